//! Append-only segment files of blob records.
//!
//! A segment is a sequence of records (see [`BlobHeader`]). The
//! [`SegmentWriter`] appends them, [`read_blob`] reads one back by its
//! [`Location`], and [`scan_segment`] walks a segment from its start.
//!
//! Invariants:
//! - records are only ever appended: bytes of a segment, once written,
//!   are never rewritten (a whole segment is removed instead);
//! - [`scan_segment`] returns the intact records before the first damaged
//!   or torn one, and nothing after it;
//! - [`read_blob`] returns a body only if the header at the location is
//!   intact and names the expected kind, id and length, and never
//!   allocates more than [`MAX_BLOB_LEN`] bytes whatever the bytes say.

use crate::{
    Backend, BlobFault, BlobHeader, BlobKind, FileId, FormatError, Location, SegmentId, HEADER_LEN,
    MAX_BLOB_LEN,
};
use std::collections::BTreeSet;
use std::io;

/// Default size past which a [`SegmentWriter`] starts a new segment.
pub const DEFAULT_MAX_SEGMENT_BYTES: u64 = 64 << 20;

/// Appends blob records to the current segment, starting a new one when
/// the current one would grow past its size limit.
///
/// The writer remembers which segments it wrote since the last
/// [`SegmentWriter::sync`], and whether it created any, so that `sync`
/// makes exactly those durable.
#[derive(Debug)]
pub struct SegmentWriter {
    segment: SegmentId,
    end: u64,
    max_segment_bytes: u64,
    unsynced: BTreeSet<SegmentId>,
    created: bool,
}

impl SegmentWriter {
    /// A writer appending to `segment` from offset `end` (0 for a new
    /// segment). `max_segment_bytes` is clamped to at most `u32::MAX`, since
    /// the node table stores offsets as `u32`; a record larger than the
    /// limit still gets a segment of its own.
    pub fn new(segment: SegmentId, end: u64, max_segment_bytes: u64) -> SegmentWriter {
        SegmentWriter {
            segment,
            end,
            max_segment_bytes: max_segment_bytes.min(u64::from(u32::MAX)),
            unsynced: BTreeSet::new(),
            created: false,
        }
    }

    /// The segment records are appended to.
    pub fn segment(&self) -> SegmentId {
        self.segment
    }

    /// The offset the next record would be written at, if it fits.
    #[cfg(any(test, feature = "testing"))]
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Starts a new segment for the next record, if the current one holds
    /// any: the current one is then sealed (compaction may rewrite it).
    ///
    /// # Errors
    /// [`FormatError::SegmentIdsExhausted`] if no segment id is left.
    pub fn roll(&mut self) -> Result<(), FormatError> {
        if self.end > 0 {
            self.segment = self
                .segment
                .next()
                .ok_or(FormatError::SegmentIdsExhausted {
                    last: self.segment.0,
                })?;
            self.end = 0;
        }
        Ok(())
    }

    /// Appends a record of `kind` and `id` holding `body`, and returns its
    /// location. The record is not durable until [`SegmentWriter::sync`].
    ///
    /// # Errors
    /// [`FormatError::BlobTooLarge`] if `body` is longer than
    /// [`MAX_BLOB_LEN`]; [`FormatError::SegmentIdsExhausted`] if a new
    /// segment is needed and none is left; [`FormatError::Io`] if the write
    /// fails, after which part of the record may be on disk and the
    /// writer's position is unchanged.
    pub fn append(
        &mut self,
        backend: &dyn Backend,
        kind: BlobKind,
        id: u64,
        body: &[u8],
    ) -> Result<Location, FormatError> {
        let mut locs = self.append_all(backend, &[(kind, id, body)])?;
        Ok(locs.remove(0))
    }

    /// Appends `records` (each a kind, an id and a body) in order, as
    /// [`SegmentWriter::append`] would one at a time, with one write for
    /// the records that go to the same segment; returns their locations.
    /// One write in place of many: a write of part of a page makes the
    /// file system zero the rest of it first, and each write is a call
    /// into the kernel.
    ///
    /// # Errors
    /// As [`SegmentWriter::append`]. On an error no location is returned,
    /// though the records before it may be on disk; the writer's position
    /// is past every segment it finished, so nothing is written twice
    /// over.
    pub fn append_all(
        &mut self,
        backend: &dyn Backend,
        records: &[(BlobKind, u64, &[u8])],
    ) -> Result<Vec<Location>, FormatError> {
        let lens = records
            .iter()
            .map(|&(kind, id, body)| body_len(kind, id, body))
            .collect::<Result<Vec<_>, _>>()?;
        let mut locs = Vec::with_capacity(records.len());
        let bytes = records.iter().map(|r| HEADER_LEN + r.2.len()).sum();
        let mut run = Vec::with_capacity(bytes);
        for (&(kind, id, body), len) in records.iter().zip(lens) {
            let header = BlobHeader { kind, id, len };
            let at = self.end + run.len() as u64;
            if at > 0 && at + header.record_len() > self.max_segment_bytes {
                self.write_run(backend, &mut run)?;
                self.roll()?;
            }
            locs.push(Location {
                segment: self.segment,
                offset: self.end + run.len() as u64,
                len: header.len,
            });
            run.extend_from_slice(&header.encode());
            run.extend_from_slice(body);
        }
        self.write_run(backend, &mut run)?;
        Ok(locs)
    }

    /// Writes `run`, whole records, at the end of the current segment and
    /// empties it.
    fn write_run(&mut self, backend: &dyn Backend, run: &mut Vec<u8>) -> Result<(), FormatError> {
        if run.is_empty() {
            return Ok(());
        }
        let file = FileId::Segment(self.segment);
        backend
            .write_at(file, self.end, run)
            .map_err(|e| FormatError::io(backend.name(file), Some(self.end), e))?;
        self.created |= self.end == 0;
        self.unsynced.insert(self.segment);
        self.end += run.len() as u64;
        run.clear();
        Ok(())
    }

    /// Makes every record appended so far durable: syncs each segment
    /// written since the last sync, then the directory if a segment was
    /// started.
    ///
    /// # Errors
    /// [`FormatError::Io`] naming the file that failed; what was not synced
    /// is synced again by the next call.
    pub fn sync(&mut self, backend: &dyn Backend) -> Result<(), FormatError> {
        while let Some(&seg) = self.unsynced.first() {
            let file = FileId::Segment(seg);
            backend
                .sync(file)
                .map_err(|e| FormatError::io(backend.name(file), None, e))?;
            self.unsynced.remove(&seg);
        }
        if self.created {
            backend
                .sync_dir()
                .map_err(|e| FormatError::io("the store directory".into(), None, e))?;
            self.created = false;
        }
        Ok(())
    }
}

/// The length a record header of `kind` and `id` gives `body`.
///
/// # Errors
/// [`FormatError::BlobTooLarge`] past [`MAX_BLOB_LEN`].
fn body_len(kind: BlobKind, id: u64, body: &[u8]) -> Result<u32, FormatError> {
    u32::try_from(body.len())
        .ok()
        .filter(|&l| l <= MAX_BLOB_LEN)
        .ok_or(FormatError::BlobTooLarge {
            kind,
            id,
            len: body.len(),
            max: MAX_BLOB_LEN.into(),
        })
}

/// Reads the body of the record at `loc`, checking that its header is
/// intact and holds a blob of `kind` and `id` whose length is `loc.len`.
///
/// # Errors
/// [`FormatError::Blob`] naming the file and offset if the header is
/// damaged, disagrees with the expectation, or the record runs past the
/// end of the file; [`FormatError::Io`] for other I/O failures.
pub fn read_blob(
    backend: &dyn Backend,
    loc: Location,
    kind: BlobKind,
    id: u64,
) -> Result<Vec<u8>, FormatError> {
    let file = FileId::Segment(loc.segment);
    let fault = |fault| FormatError::Blob {
        file: backend.name(file),
        offset: loc.offset,
        kind,
        id,
        fault,
    };
    let eof_or_io = |e: io::Error, offset| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            fault(BlobFault::Truncated)
        } else {
            FormatError::io(backend.name(file), Some(offset), e)
        }
    };
    let mut h = [0u8; HEADER_LEN];
    backend
        .read_at(file, loc.offset, &mut h)
        .map_err(|e| eof_or_io(e, loc.offset))?;
    let header = BlobHeader::decode(&h).map_err(fault)?;
    if header.kind != kind {
        return Err(fault(BlobFault::KindMismatch(header.kind)));
    }
    if header.id != id {
        return Err(fault(BlobFault::IdMismatch(header.id)));
    }
    if header.len != loc.len {
        return Err(fault(BlobFault::LenMismatch {
            expected: loc.len,
            found: header.len,
        }));
    }
    // decode() refused any length above MAX_BLOB_LEN, so this is bounded.
    let mut body = vec![0u8; header.len as usize];
    let body_at = loc.offset + HEADER_LEN as u64;
    backend
        .read_at(file, body_at, &mut body)
        .map_err(|e| eof_or_io(e, body_at))?;
    Ok(body)
}

/// Walks the records of segment `seg` from offset 0 and returns every
/// intact one, stopping at the first invalid header or at a record that
/// runs past the end of the file (a torn tail is normal after a crash).
/// Bodies are not read, so they are not checked.
///
/// # Errors
/// [`FormatError::Io`] if the segment cannot be measured or read (a
/// missing segment included).
pub fn scan_segment(
    backend: &dyn Backend,
    seg: SegmentId,
) -> Result<Vec<(BlobHeader, Location)>, FormatError> {
    let file = FileId::Segment(seg);
    let io_err = |offset, e| FormatError::io(backend.name(file), offset, e);
    let file_len = backend.len(file).map_err(|e| io_err(None, e))?;
    let mut found = Vec::new();
    let mut offset = 0u64;
    while file_len - offset >= HEADER_LEN as u64 {
        let mut h = [0u8; HEADER_LEN];
        backend
            .read_at(file, offset, &mut h)
            .map_err(|e| io_err(Some(offset), e))?;
        let Ok(header) = BlobHeader::decode(&h) else {
            break;
        };
        if file_len - offset < header.record_len() {
            break;
        }
        found.push((
            header,
            Location {
                segment: seg,
                offset,
                len: header.len,
            },
        ));
        offset += header.record_len();
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CrashMode, FaultyBackend, MemBackend};
    use proptest::prelude::*;

    fn writer() -> SegmentWriter {
        SegmentWriter::new(SegmentId::FIRST, 0, DEFAULT_MAX_SEGMENT_BYTES)
    }

    #[test]
    fn appended_blobs_read_back_and_scan() {
        let b = MemBackend::new();
        let mut w = writer();
        let bodies: [&[u8]; 3] = [b"first", b"", b"third body"];
        let locs: Vec<Location> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| w.append(&b, BlobKind::Node, i as u64 + 10, body).unwrap())
            .collect();
        assert_eq!(locs[0].offset, 0);
        assert_eq!(locs[1].offset, 24 + 5);
        assert_eq!(w.end(), 3 * 24 + 15);
        for (i, (loc, body)) in locs.iter().zip(bodies).enumerate() {
            let got = read_blob(&b, *loc, BlobKind::Node, i as u64 + 10).unwrap();
            assert_eq!(got, body);
        }
        let scanned = scan_segment(&b, SegmentId::FIRST).unwrap();
        let scanned_locs: Vec<Location> = scanned.iter().map(|(_, l)| *l).collect();
        assert_eq!(scanned_locs, locs);
        assert_eq!(scanned[2].0.id, 12);
    }

    #[test]
    fn read_blob_refuses_the_wrong_kind_id_or_length() {
        let b = MemBackend::new();
        let loc = writer().append(&b, BlobKind::Node, 5, b"body").unwrap();
        let fault_of = |r: Result<Vec<u8>, FormatError>| match r {
            Err(FormatError::Blob { fault, .. }) => fault,
            other => panic!("expected a blob fault, got {other:?}"),
        };
        assert_eq!(
            fault_of(read_blob(&b, loc, BlobKind::Catalog, 5)),
            BlobFault::KindMismatch(BlobKind::Node)
        );
        assert_eq!(
            fault_of(read_blob(&b, loc, BlobKind::Node, 6)),
            BlobFault::IdMismatch(5)
        );
        let longer = Location { len: 5, ..loc };
        assert_eq!(
            fault_of(read_blob(&b, longer, BlobKind::Node, 5)),
            BlobFault::LenMismatch {
                expected: 5,
                found: 4
            }
        );
        let elsewhere = Location { offset: 1, ..loc };
        assert!(matches!(
            fault_of(read_blob(&b, elsewhere, BlobKind::Node, 5)),
            BlobFault::Magic(_)
        ));
        let past_end = Location { offset: 100, ..loc };
        assert_eq!(
            fault_of(read_blob(&b, past_end, BlobKind::Node, 5)),
            BlobFault::Truncated
        );
    }

    #[test]
    fn read_blob_errors_name_file_offset_and_node() {
        let b = MemBackend::new();
        let mut w = writer();
        w.append(&b, BlobKind::Node, 1, b"x").unwrap();
        let loc = w.append(&b, BlobKind::Node, 42, b"body").unwrap();
        let err = read_blob(&b, loc, BlobKind::Node, 41).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node blob 41 at seg-000001.lx offset 25: found id 42 instead"
        );
    }

    #[test]
    fn read_blob_reports_a_truncated_body() {
        let b = FaultyBackend::new();
        let loc = writer()
            .append(&b, BlobKind::Node, 1, b"0123456789")
            .unwrap();
        b.sync_dir().unwrap();
        b.crash(CrashMode::TearLastWrite { keep: 30 });
        let err = read_blob(&b, loc, BlobKind::Node, 1).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Blob {
                    fault: BlobFault::Truncated,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn read_blob_never_allocates_a_hostile_length() {
        // A header claiming 4 GiB, in a location claiming the same: refused
        // before any allocation.
        let b = MemBackend::new();
        let mut h = BlobHeader {
            kind: BlobKind::Node,
            id: 1,
            len: 0,
        }
        .encode();
        h[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32c::crc32c(&h[..20]);
        h[20..24].copy_from_slice(&crc.to_le_bytes());
        b.write_at(FileId::Segment(SegmentId(1)), 0, &h).unwrap();
        let loc = Location {
            segment: SegmentId(1),
            offset: 0,
            len: u32::MAX,
        };
        let err = read_blob(&b, loc, BlobKind::Node, 1).unwrap_err();
        assert!(matches!(
            err,
            FormatError::Blob {
                fault: BlobFault::TooLarge { .. },
                ..
            }
        ));
    }

    #[test]
    fn read_blob_passes_io_errors_through() {
        let b = FaultyBackend::new();
        let loc = writer().append(&b, BlobKind::Node, 1, b"x").unwrap();
        b.fail_after(0);
        let err = read_blob(&b, loc, BlobKind::Node, 1).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Io {
                    offset: Some(0),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn append_refuses_a_body_over_the_limit() {
        let b = MemBackend::new();
        let big = vec![0u8; MAX_BLOB_LEN as usize + 1];
        let err = writer().append(&b, BlobKind::Catalog, 0, &big).unwrap_err();
        assert!(matches!(err, FormatError::BlobTooLarge { .. }), "{err:?}");
        assert!(b.segments().unwrap().is_empty());
    }

    #[test]
    fn writer_rolls_to_a_new_segment_when_full() {
        let b = MemBackend::new();
        let mut w = SegmentWriter::new(SegmentId(4), 0, 100);
        let body = [7u8; 26]; // 50-byte records
        let l1 = w.append(&b, BlobKind::Node, 1, &body).unwrap();
        let l2 = w.append(&b, BlobKind::Node, 2, &body).unwrap();
        let l3 = w.append(&b, BlobKind::Node, 3, &body).unwrap();
        assert_eq!((l1.segment, l1.offset), (SegmentId(4), 0));
        assert_eq!((l2.segment, l2.offset), (SegmentId(4), 50));
        assert_eq!((l3.segment, l3.offset), (SegmentId(5), 0));
        // A record larger than the limit gets a segment of its own.
        let big = [1u8; 200];
        let l4 = w.append(&b, BlobKind::Node, 4, &big).unwrap();
        let l5 = w.append(&b, BlobKind::Node, 5, &body).unwrap();
        assert_eq!((l4.segment, l4.offset), (SegmentId(6), 0));
        assert_eq!((l5.segment, l5.offset), (SegmentId(7), 0));
        assert_eq!(
            b.segments().unwrap(),
            vec![SegmentId(4), SegmentId(5), SegmentId(6), SegmentId(7)]
        );
        assert_eq!(b.len(FileId::Segment(SegmentId(4))).unwrap(), 100);
        for (i, loc) in [l1, l2, l3, l4, l5].into_iter().enumerate() {
            read_blob(&b, loc, BlobKind::Node, i as u64 + 1).unwrap();
        }
    }

    #[test]
    fn append_all_places_records_as_appends_one_at_a_time_would() {
        let bodies: Vec<Vec<u8>> = [26, 26, 26, 200, 26, 0, 10]
            .iter()
            .enumerate()
            .map(|(i, &n)| vec![i as u8; n])
            .collect();
        let records: Vec<(BlobKind, u64, &[u8])> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (BlobKind::Node, i as u64, &b[..]))
            .collect();
        let (one, all) = (MemBackend::new(), MemBackend::new());
        let mut w1 = SegmentWriter::new(SegmentId(4), 0, 100);
        let singly: Vec<Location> = records
            .iter()
            .map(|&(k, id, body)| w1.append(&one, k, id, body).unwrap())
            .collect();
        let mut w2 = SegmentWriter::new(SegmentId(4), 0, 100);
        let together = w2.append_all(&all, &records).unwrap();
        assert_eq!(together, singly);
        assert_eq!((w2.segment(), w2.end()), (w1.segment(), w1.end()));
        let bytes = |b: &MemBackend, file| {
            let mut buf = vec![0; b.len(file).unwrap() as usize];
            b.read_at(file, 0, &mut buf).unwrap();
            buf
        };
        for seg in one.segments().unwrap() {
            let file = FileId::Segment(seg);
            assert_eq!(bytes(&all, file), bytes(&one, file));
        }
        assert_eq!(all.segments().unwrap(), one.segments().unwrap());
    }

    #[test]
    fn append_all_writes_once_per_segment() {
        let b = FaultyBackend::new();
        let mut w = SegmentWriter::new(SegmentId::FIRST, 0, 100);
        let body = [7u8; 26]; // 50-byte records: two to a segment
        let records = vec![(BlobKind::Node, 1, &body[..]); 5];
        let before = b.operations();
        let locs = w.append_all(&b, &records).unwrap();
        assert_eq!(locs.len(), 5);
        assert_eq!(b.operations() - before, 3, "one write per segment");
    }

    #[test]
    fn append_all_refuses_an_oversized_body_before_writing_any() {
        let b = MemBackend::new();
        let big = vec![0u8; MAX_BLOB_LEN as usize + 1];
        let records = [
            (BlobKind::Node, 1, &b"small"[..]),
            (BlobKind::Node, 2, &big),
        ];
        let err = writer().append_all(&b, &records).unwrap_err();
        assert!(
            matches!(err, FormatError::BlobTooLarge { id: 2, .. }),
            "{err:?}"
        );
        assert!(b.segments().unwrap().is_empty());
    }

    #[test]
    fn writer_refuses_to_overflow_segment_ids() {
        let b = MemBackend::new();
        let mut w = SegmentWriter::new(SegmentId(u32::MAX), 0, 30);
        w.append(&b, BlobKind::Node, 1, b"x").unwrap();
        let err = w.append(&b, BlobKind::Node, 2, b"x").unwrap_err();
        assert!(matches!(
            err,
            FormatError::SegmentIdsExhausted { last: u32::MAX }
        ));
    }

    #[test]
    fn writer_sync_makes_every_written_segment_durable() {
        let b = FaultyBackend::new();
        let mut w = SegmentWriter::new(SegmentId(1), 0, 100);
        let locs: Vec<Location> = (1..=3)
            .map(|i| w.append(&b, BlobKind::Node, i, &[i as u8; 20]).unwrap())
            .collect();
        assert_eq!(locs[2].segment, SegmentId(2));
        w.sync(&b).unwrap();
        let unsynced = w.append(&b, BlobKind::Node, 4, b"late").unwrap();
        b.crash(CrashMode::DropUnsynced);
        for (i, loc) in locs.iter().enumerate() {
            read_blob(&b, *loc, BlobKind::Node, i as u64 + 1).unwrap();
        }
        assert!(read_blob(&b, unsynced, BlobKind::Node, 4).is_err());
    }

    #[test]
    fn writer_sync_retries_what_failed() {
        let b = FaultyBackend::new();
        let mut w = writer();
        let loc = w.append(&b, BlobKind::Node, 1, b"x").unwrap();
        b.fail_after(0);
        assert!(w.sync(&b).is_err());
        b.heal();
        w.sync(&b).unwrap();
        b.crash(CrashMode::DropUnsynced);
        read_blob(&b, loc, BlobKind::Node, 1).unwrap();
    }

    #[test]
    fn scan_stops_at_a_torn_tail() {
        for keep in [0, 10, 24, 30] {
            let b = FaultyBackend::new();
            let mut w = writer();
            let good: Vec<Location> = (1..=3)
                .map(|i| w.append(&b, BlobKind::Node, i, b"twelve bytes").unwrap())
                .collect();
            w.sync(&b).unwrap();
            w.append(&b, BlobKind::Node, 4, b"twelve bytes").unwrap();
            b.crash(CrashMode::TearLastWrite { keep });
            let found: Vec<Location> = scan_segment(&b, SegmentId::FIRST)
                .unwrap()
                .into_iter()
                .map(|(_, l)| l)
                .collect();
            assert_eq!(found, good, "keep {keep}");
        }
    }

    #[test]
    fn scan_stops_at_a_damaged_header() {
        let b = FaultyBackend::new();
        let mut w = writer();
        for i in 1..=3 {
            w.append(&b, BlobKind::Node, i, b"abc").unwrap();
        }
        assert_eq!(scan_segment(&b, SegmentId::FIRST).unwrap().len(), 3);
        // Damage the second header: only the first record is found.
        b.flip_bit(FileId::Segment(SegmentId::FIRST), 27 + 9, 0)
            .unwrap();
        let found = scan_segment(&b, SegmentId::FIRST).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0.id, 1);
    }

    #[test]
    fn scan_of_a_missing_segment_is_an_io_error() {
        let err = scan_segment(&MemBackend::new(), SegmentId(9)).unwrap_err();
        assert!(matches!(err, FormatError::Io { .. }));
        assert!(err.to_string().contains("seg-000009.lx"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn scan_of_arbitrary_bytes_never_panics_and_stays_in_bounds(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let b = MemBackend::new();
            b.write_at(FileId::Segment(SegmentId(1)), 0, &bytes).unwrap();
            let found = scan_segment(&b, SegmentId(1)).unwrap();
            prop_assert!(found.len() <= bytes.len() / HEADER_LEN);
            for (h, loc) in found {
                prop_assert!(loc.offset + h.record_len() <= bytes.len() as u64);
            }
        }

        #[test]
        fn read_blob_of_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..256),
            offset in 0u64..300,
            len in any::<u32>(),
            id in 0u64..4,
        ) {
            let b = MemBackend::new();
            b.write_at(FileId::Segment(SegmentId(1)), 0, &bytes).unwrap();
            let loc = Location { segment: SegmentId(1), offset, len };
            if let Ok(body) = read_blob(&b, loc, BlobKind::Node, id) {
                prop_assert_eq!(body.len() as u32, len);
                prop_assert!(body.len() <= bytes.len());
            }
        }

        #[test]
        fn appended_records_scan_back_in_order(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12),
            max in 0u64..200,
        ) {
            let b = MemBackend::new();
            let mut w = SegmentWriter::new(SegmentId::FIRST, 0, max);
            let mut locs = Vec::new();
            for (i, body) in bodies.iter().enumerate() {
                locs.push(w.append(&b, BlobKind::Node, i as u64, body).unwrap());
            }
            let mut scanned = Vec::new();
            for seg in b.segments().unwrap() {
                scanned.extend(scan_segment(&b, seg).unwrap().into_iter().map(|(_, l)| l));
            }
            prop_assert_eq!(&scanned, &locs);
            for (i, (loc, body)) in locs.iter().zip(&bodies).enumerate() {
                prop_assert_eq!(&read_blob(&b, *loc, BlobKind::Node, i as u64).unwrap(), body);
                prop_assert!(loc.offset == 0 || loc.offset + loc.record_len() <= max.min(u64::from(u32::MAX)));
            }
        }
    }
}
