//! The node table: node id → location of its blob and reference count.
//!
//! The table is kept in memory as chunks of [`CHUNK_ENTRIES`] consecutive
//! ids (chunk index = id / 256). Committed chunks are copy-on-write: a
//! commit writes only the chunks changed since the last one
//! ([`NodeTable::dirty_chunks`]), each as its own blob, and the
//! [`Directory`](crate::Directory) records where each chunk lies.
//!
//! Invariants:
//! - [`NodeTable::len`] is the number of ids with an entry;
//! - [`NodeTable::live_bytes`] of a segment is exactly the sum of the record
//!   lengths (header and body) of the entries located in it;
//! - a chunk is dirty from the first change after [`NodeTable::mark_clean`]
//!   (or its loading) until the next `mark_clean`;
//! - only entries with a location can be encoded: a committed table never
//!   points at a node that was not written.

use super::blob::{u32_at, MAX_BLOB_LEN};
use crate::{FormatError, Location, NodeId, SegmentId};
use rustc_hash::{FxHashMap, FxHashSet};

/// Ids per chunk.
pub const CHUNK_ENTRIES: u64 = 256;

/// The largest chunk index (that of node id `u64::MAX`).
pub const MAX_CHUNK: u64 = u64::MAX / CHUNK_ENTRIES;

/// Bytes of one encoded slot.
const SLOT_BYTES: usize = 24;

/// Bytes of an encoded chunk: 256 slots and a crc32c.
pub const CHUNK_BYTES: usize = CHUNK_ENTRIES as usize * SLOT_BYTES + 4;

/// One row of the node table.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TableEntry {
    /// Where the node's blob lies; `None` until it has been written.
    pub loc: Option<Location>,
    /// The node's reference count.
    pub refcount: u32,
    /// The digest of the blob at `loc` ([`node_digest`](crate::node_digest));
    /// 0 while there is no location.
    pub digest: u64,
}

/// 256 consecutive slots.
#[derive(Debug, Clone)]
struct Chunk {
    slots: Box<[Option<TableEntry>]>,
    live: usize,
}

impl Chunk {
    fn empty() -> Chunk {
        Chunk {
            slots: vec![None; CHUNK_ENTRIES as usize].into_boxed_slice(),
            live: 0,
        }
    }
}

/// The node table; see the module documentation.
#[derive(Debug, Default)]
pub struct NodeTable {
    chunks: FxHashMap<u64, Chunk>,
    /// Chunks changed since the last checkpoint: a hash set, since every
    /// table change marks one (an ordered set's insert cost a tree walk).
    dirty: FxHashSet<u64>,
    len: u64,
    live_bytes: FxHashMap<SegmentId, u64>,
}

/// The chunk index of `id` and its slot within the chunk.
fn split(id: NodeId) -> (u64, usize) {
    (id.0 / CHUNK_ENTRIES, (id.0 % CHUNK_ENTRIES) as usize)
}

impl NodeTable {
    /// An empty table.
    pub fn new() -> NodeTable {
        NodeTable::default()
    }

    /// The entry of `id`, if it has one.
    pub fn get(&self, id: NodeId) -> Option<TableEntry> {
        let (c, s) = split(id);
        self.chunks.get(&c).and_then(|chunk| chunk.slots[s])
    }

    /// Sets the entry of `id`, returning the one it replaces. Marks its
    /// chunk dirty.
    pub fn set(&mut self, id: NodeId, entry: TableEntry) -> Option<TableEntry> {
        let (c, s) = split(id);
        self.dirty.insert(c);
        let chunk = self.chunks.entry(c).or_insert_with(Chunk::empty);
        let old = chunk.slots[s].replace(entry);
        if old.is_none() {
            chunk.live += 1;
            self.len += 1;
        }
        match old {
            // Same place (a new count): the segment's live bytes stay.
            Some(old) if old.loc == entry.loc => {}
            Some(old) => {
                self.account(&old, false);
                self.account(&entry, true);
            }
            None => self.account(&entry, true),
        }
        old
    }

    /// Removes the entry of `id`, returning it. Marks its chunk dirty if it
    /// had one.
    pub fn remove(&mut self, id: NodeId) -> Option<TableEntry> {
        let (c, s) = split(id);
        let chunk = self.chunks.get_mut(&c)?;
        let old = chunk.slots[s].take()?;
        chunk.live -= 1;
        if chunk.live == 0 {
            self.chunks.remove(&c);
        }
        self.dirty.insert(c);
        self.len -= 1;
        self.account(&old, false);
        Some(old)
    }

    /// The number of ids with an entry.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no id has an entry.
    #[cfg(any(test, feature = "testing"))]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids with an entry, ascending.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        let mut order: Vec<u64> = self.chunks.keys().copied().collect();
        order.sort_unstable();
        order.into_iter().flat_map(move |c| {
            self.chunks[&c]
                .slots
                .iter()
                .enumerate()
                .filter(|(_, e)| e.is_some())
                .map(move |(s, _)| NodeId(c * CHUNK_ENTRIES + s as u64))
        })
    }

    /// The number of entries in chunk `idx`. A dirty chunk with none may be
    /// dropped from the directory rather than written.
    pub fn chunk_len(&self, idx: u64) -> usize {
        self.chunks.get(&idx).map_or(0, |c| c.live)
    }

    /// The chunks changed since the last [`NodeTable::mark_clean`],
    /// ascending.
    pub fn dirty_chunks(&self) -> Vec<u64> {
        let mut chunks: Vec<u64> = self.dirty.iter().copied().collect();
        chunks.sort_unstable();
        chunks
    }

    /// Takes the chunks changed since the last [`NodeTable::mark_clean`] (or
    /// extraction) out as a table of their own, as they are now, and marks
    /// this table clean: a checkpoint writes the extracted chunks while this
    /// table goes on changing. A changed chunk left without entries comes
    /// out dirty and empty, so the checkpoint drops it from the directory.
    pub fn extract_dirty(&mut self) -> NodeTable {
        let mut out = NodeTable::new();
        for idx in std::mem::take(&mut self.dirty) {
            if let Some(chunk) = self.chunks.get(&idx) {
                out.len += chunk.live as u64;
                for e in chunk.slots.iter().flatten() {
                    out.account(e, true);
                }
                out.chunks.insert(idx, chunk.clone());
            }
            out.dirty.insert(idx);
        }
        out
    }

    /// Points the entry of `id`, if it has one, at `loc` with `digest`,
    /// keeping its refcount.
    pub fn set_location(&mut self, id: NodeId, loc: Location, digest: u64) {
        if let Some(entry) = self.get(id) {
            self.set(
                id,
                TableEntry {
                    loc: Some(loc),
                    refcount: entry.refcount,
                    digest,
                },
            );
        }
    }

    /// Forgets which chunks changed: call once they are committed.
    #[cfg(any(test, feature = "testing"))]
    pub fn mark_clean(&mut self) {
        self.dirty.clear();
    }

    /// Bytes of the records (header and body) of the entries located in
    /// `seg`: the part of the segment still in use.
    #[cfg(any(test, feature = "testing"))]
    pub fn live_bytes(&self, seg: SegmentId) -> u64 {
        self.live_bytes.get(&seg).copied().unwrap_or(0)
    }

    /// Marks the chunk of `id` changed: its location is about to change.
    pub fn mark_dirty_id(&mut self, id: NodeId) {
        self.dirty.insert(split(id).0);
    }

    /// Sets the entry of `id` as [`NodeTable::set`] does, without marking
    /// its chunk changed: for a change already on its way to disk in a
    /// chunk extracted for a checkpoint.
    pub fn set_unmarked(&mut self, id: NodeId, entry: TableEntry) {
        let (c, _) = split(id);
        let was_dirty = self.dirty.contains(&c);
        self.set(id, entry);
        if !was_dirty {
            self.dirty.remove(&c);
        }
    }

    /// Marks chunk `idx` changed, so the next commit writes it again (when
    /// its blob is moved out of a segment being compacted).
    pub fn mark_dirty(&mut self, idx: u64) {
        if idx <= MAX_CHUNK {
            self.dirty.insert(idx);
        }
    }

    /// Live record bytes per segment, for the segments that have any.
    pub fn live_by_segment(&self) -> impl Iterator<Item = (SegmentId, u64)> + '_ {
        self.live_bytes.iter().map(|(&s, &b)| (s, b))
    }

    /// The entries located in each of `segs`, with their locations and
    /// digests, by ascending id, in one pass over the table.
    pub fn entries_in(
        &self,
        segs: &[SegmentId],
    ) -> FxHashMap<SegmentId, Vec<(NodeId, Location, u64)>> {
        let mut order: Vec<u64> = self.chunks.keys().copied().collect();
        order.sort_unstable();
        let mut out: FxHashMap<SegmentId, Vec<_>> = segs.iter().map(|&s| (s, Vec::new())).collect();
        for c in order {
            for (s, e) in self.chunks[&c].slots.iter().enumerate() {
                let Some(e) = e else { continue };
                let Some(loc) = e.loc else { continue };
                if let Some(list) = out.get_mut(&loc.segment) {
                    list.push((NodeId(c * CHUNK_ENTRIES + s as u64), loc, e.digest));
                }
            }
        }
        out
    }

    /// Encodes chunk `idx` (all free if it has no entries; `idx` above
    /// [`MAX_CHUNK`] never has any): 256 slots of
    /// 24 bytes (segment u32, offset u32, body length u32, refcount u32,
    /// blob digest u64; all zero when free), then a crc32c of the chunk
    /// index (u64 LE) followed by the slots.
    ///
    /// # Errors
    /// [`FormatError::EntryUnencodable`] if an entry has no location, or a
    /// location the slot cannot hold (segment 0, an offset beyond 4 GiB, a
    /// length beyond the blob limit).
    pub fn encode_chunk(&self, idx: u64) -> Result<Vec<u8>, FormatError> {
        let mut out = vec![0u8; CHUNK_BYTES];
        if let Some(chunk) = self.chunks.get(&idx) {
            for (s, entry) in chunk.slots.iter().enumerate() {
                let Some(entry) = entry else { continue };
                let id = NodeId(idx * CHUNK_ENTRIES + s as u64);
                let bad = |reason| FormatError::EntryUnencodable { id, reason };
                let loc = entry.loc.ok_or(bad("it has no location yet"))?;
                if loc.segment.0 == 0 {
                    return Err(bad("its location is in segment 0"));
                }
                let offset =
                    u32::try_from(loc.offset).map_err(|_| bad("its offset is past 4 GiB"))?;
                if loc.len > MAX_BLOB_LEN {
                    return Err(bad("its length is past the blob limit"));
                }
                let slot = &mut out[s * SLOT_BYTES..(s + 1) * SLOT_BYTES];
                slot[0..4].copy_from_slice(&loc.segment.0.to_le_bytes());
                slot[4..8].copy_from_slice(&offset.to_le_bytes());
                slot[8..12].copy_from_slice(&loc.len.to_le_bytes());
                slot[12..16].copy_from_slice(&entry.refcount.to_le_bytes());
                slot[16..24].copy_from_slice(&entry.digest.to_le_bytes());
            }
        }
        let crc = chunk_crc(idx, &out[..CHUNK_BYTES - 4]);
        out[CHUNK_BYTES - 4..].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Replaces chunk `idx` with the one encoded in `bytes` (as read from
    /// disk: the chunk is clean afterwards).
    ///
    /// # Errors
    /// [`FormatError::ChunkDamaged`] if `idx` is above [`MAX_CHUNK`],
    /// `bytes` is not exactly one chunk,
    /// its checksum does not match (damage, or a chunk of another index),
    /// or a slot is neither free nor a valid entry. The table is unchanged
    /// then.
    pub fn load_chunk(&mut self, idx: u64, bytes: &[u8]) -> Result<(), FormatError> {
        let chunk = decode_chunk(idx, bytes)?;
        if let Some(old) = self.chunks.remove(&idx) {
            self.len -= old.live as u64;
            for e in old.slots.iter().flatten() {
                self.account(e, false);
            }
        }
        self.len += chunk.live as u64;
        for e in chunk.slots.iter().flatten() {
            self.account(e, true);
        }
        if chunk.live > 0 {
            self.chunks.insert(idx, chunk);
        }
        self.dirty.remove(&idx);
        Ok(())
    }

    /// Adds (or subtracts) the record bytes of `entry` to its segment.
    fn account(&mut self, entry: &TableEntry, add: bool) {
        let Some(loc) = entry.loc else { return };
        let bytes = loc.record_len();
        let total = self.live_bytes.entry(loc.segment).or_insert(0);
        if add {
            *total += bytes;
        } else {
            *total -= bytes;
            if *total == 0 {
                self.live_bytes.remove(&loc.segment);
            }
        }
    }
}

/// The checksum that seals chunk `idx`: it binds the index, so a chunk
/// read under another index does not verify.
fn chunk_crc(idx: u64, slots: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&idx.to_le_bytes()), slots)
}

/// Decodes an encoded chunk without touching any table.
fn decode_chunk(idx: u64, bytes: &[u8]) -> Result<Chunk, FormatError> {
    let damaged = |reason: String| FormatError::ChunkDamaged { chunk: idx, reason };
    if idx > MAX_CHUNK {
        return Err(damaged(format!("no chunk has index {idx}")));
    }
    if bytes.len() != CHUNK_BYTES {
        return Err(damaged(format!(
            "{} bytes instead of {CHUNK_BYTES}",
            bytes.len()
        )));
    }
    let stored = u32_at(bytes, CHUNK_BYTES - 4);
    let computed = chunk_crc(idx, &bytes[..CHUNK_BYTES - 4]);
    if stored != computed {
        return Err(damaged(format!(
            "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        )));
    }
    let mut chunk = Chunk::empty();
    for (s, raw) in bytes[..CHUNK_BYTES - 4]
        .chunks_exact(SLOT_BYTES)
        .enumerate()
    {
        if raw.iter().all(|&b| b == 0) {
            continue;
        }
        let id = NodeId(idx * CHUNK_ENTRIES + s as u64);
        let segment = SegmentId(u32_at(raw, 0));
        let len = u32_at(raw, 8);
        if segment.0 == 0 {
            return Err(damaged(format!("the entry of {id} is in segment 0")));
        }
        if len > MAX_BLOB_LEN {
            return Err(damaged(format!("the entry of {id} has length {len}")));
        }
        chunk.slots[s] = Some(TableEntry {
            loc: Some(Location {
                segment,
                offset: u32_at(raw, 4).into(),
                len,
            }),
            refcount: u32_at(raw, 12),
            digest: super::blob::u64_at(raw, 16),
        });
        chunk.live += 1;
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn entry(segment: u32, offset: u64, len: u32, refcount: u32) -> TableEntry {
        TableEntry {
            loc: Some(Location {
                segment: SegmentId(segment),
                offset,
                len,
            }),
            refcount,
            digest: u64::from(segment) * 7 + offset,
        }
    }

    fn loc(segment: u32, offset: u64, len: u32) -> Location {
        Location {
            segment: SegmentId(segment),
            offset,
            len,
        }
    }

    fn damage_reason(r: Result<(), FormatError>) -> String {
        match r {
            Err(FormatError::ChunkDamaged { reason, .. }) => reason,
            other => panic!("expected ChunkDamaged, got {other:?}"),
        }
    }

    #[test]
    fn extracting_the_dirty_chunks_leaves_the_table_clean() {
        let mut t = NodeTable::new();
        t.set(NodeId(1), entry(1, 0, 10, 1));
        t.set(NodeId(300), entry(1, 40, 10, 1));
        t.mark_clean();
        t.set(NodeId(2), entry(1, 80, 10, 1));
        t.remove(NodeId(300));
        let mut part = t.extract_dirty();
        assert!(t.dirty_chunks().is_empty());
        assert_eq!(part.dirty_chunks(), vec![0, 1]);
        assert_eq!(part.chunk_len(0), 2);
        assert_eq!(part.chunk_len(1), 0);
        // Later changes to either table leave the other alone.
        t.set(NodeId(1), entry(2, 0, 10, 5));
        assert_eq!(part.get(NodeId(1)), Some(entry(1, 0, 10, 1)));
        part.set_location(NodeId(2), loc(3, 8, 10), 42);
        assert_eq!(part.get(NodeId(2)).unwrap().digest, 42);
        assert_eq!(t.get(NodeId(2)), Some(entry(1, 80, 10, 1)));
        part.set_location(NodeId(9), loc(3, 8, 10), 42);
        assert_eq!(part.get(NodeId(9)), None);
    }

    #[test]
    fn set_get_remove_and_len() {
        let mut t = NodeTable::new();
        assert!(t.is_empty());
        assert_eq!(t.set(NodeId(5), entry(1, 0, 10, 1)), None);
        assert_eq!(
            t.set(NodeId(5), entry(1, 34, 10, 2)),
            Some(entry(1, 0, 10, 1))
        );
        t.set(
            NodeId(2048),
            TableEntry {
                loc: None,
                refcount: 1,
                digest: 0,
            },
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(NodeId(5)), Some(entry(1, 34, 10, 2)));
        assert_eq!(t.get(NodeId(6)), None);
        assert_eq!(t.get(NodeId(u64::MAX)), None);
        assert_eq!(t.remove(NodeId(5)), Some(entry(1, 34, 10, 2)));
        assert_eq!(t.remove(NodeId(5)), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(NodeId(5)), None);
    }

    #[test]
    fn ids_are_ascending_across_chunks() {
        let mut t = NodeTable::new();
        for id in [5000, 3, 1024, 1023, 9_999_999, 4] {
            t.set(NodeId(id), entry(1, 0, 1, 1));
        }
        let ids: Vec<u64> = t.ids().map(|id| id.0).collect();
        assert_eq!(ids, vec![3, 4, 1023, 1024, 5000, 9_999_999]);
    }

    #[test]
    fn dirty_chunks_track_changes_since_mark_clean() {
        let mut t = NodeTable::new();
        t.set(NodeId(1), entry(1, 0, 1, 1));
        t.set(NodeId(2 * CHUNK_ENTRIES + 7), entry(1, 0, 1, 1));
        assert_eq!(t.dirty_chunks(), vec![0, 2]);
        t.mark_clean();
        assert!(t.dirty_chunks().is_empty());
        // Removing a missing id changes nothing.
        assert_eq!(t.remove(NodeId(CHUNK_ENTRIES + 5)), None);
        assert!(t.dirty_chunks().is_empty());
        t.remove(NodeId(2 * CHUNK_ENTRIES + 7));
        assert_eq!(t.dirty_chunks(), vec![2]);
        assert_eq!(t.chunk_len(2), 0);
        assert_eq!(t.chunk_len(0), 1);
    }

    #[test]
    fn chunks_round_trip_into_a_fresh_table() {
        let mut t = NodeTable::new();
        t.set(NodeId(0), entry(1, 0, 0, 0));
        t.set(
            NodeId(1023),
            entry(2, u64::from(u32::MAX), MAX_BLOB_LEN, u32::MAX),
        );
        t.set(NodeId(1024), entry(u32::MAX, 7, 3, 9));
        let mut fresh = NodeTable::new();
        for idx in t.dirty_chunks() {
            fresh
                .load_chunk(idx, &t.encode_chunk(idx).unwrap())
                .unwrap();
        }
        assert_eq!(fresh.ids().collect::<Vec<_>>(), t.ids().collect::<Vec<_>>());
        for id in t.ids() {
            assert_eq!(fresh.get(id), t.get(id));
        }
        assert_eq!(fresh.len(), 3);
        assert!(fresh.dirty_chunks().is_empty());
        for seg in [1, 2, u32::MAX] {
            assert_eq!(
                fresh.live_bytes(SegmentId(seg)),
                t.live_bytes(SegmentId(seg))
            );
        }
    }

    #[test]
    fn chunk_layout_is_as_documented() {
        let mut t = NodeTable::new();
        t.set(NodeId(CHUNK_ENTRIES + 2), entry(7, 96, 300, 5));
        let b = t.encode_chunk(1).unwrap();
        assert_eq!(b.len(), 24 * 256 + 4);
        // Digest 7 * 7 + 96 = 145.
        assert_eq!(
            &b[48..72],
            &[7, 0, 0, 0, 96, 0, 0, 0, 44, 1, 0, 0, 5, 0, 0, 0, 145, 0, 0, 0, 0, 0, 0, 0]
        );
        assert!(b[..48].iter().chain(&b[72..b.len() - 4]).all(|&x| x == 0));
        let mut sealed = 1u64.to_le_bytes().to_vec();
        sealed.extend_from_slice(&b[..b.len() - 4]);
        assert_eq!(u32_at(&b, b.len() - 4), crc32c::crc32c(&sealed));
    }

    #[test]
    fn an_empty_or_absent_chunk_encodes_as_all_free() {
        let mut t = NodeTable::new();
        t.set(NodeId(7), entry(1, 0, 1, 1));
        t.remove(NodeId(7));
        let b = t.encode_chunk(0).unwrap();
        assert!(b[..b.len() - 4].iter().all(|&x| x == 0));
        let mut fresh = NodeTable::new();
        fresh.set(NodeId(9), entry(1, 0, 1, 1));
        fresh.load_chunk(0, &b).unwrap();
        assert!(fresh.is_empty());
        assert_eq!(fresh.live_bytes(SegmentId(1)), 0);
    }

    #[test]
    fn unwritten_or_unfit_entries_are_refused_at_encode() {
        let cases = [
            (
                TableEntry {
                    loc: None,
                    refcount: 1,
                    digest: 0,
                },
                "no location",
            ),
            (entry(0, 0, 1, 1), "segment 0"),
            (entry(1, 1 << 32, 1, 1), "4 GiB"),
            (entry(1, 0, MAX_BLOB_LEN + 1, 1), "blob limit"),
        ];
        for (e, what) in cases {
            let mut t = NodeTable::new();
            t.set(NodeId(2 * CHUNK_ENTRIES + 2), e);
            let err = t.encode_chunk(2).unwrap_err();
            assert!(
                matches!(
                    err,
                    FormatError::EntryUnencodable {
                        id: NodeId(514),
                        ..
                    }
                ),
                "{err:?}"
            );
            assert!(err.to_string().contains(what), "{err}");
            assert!(err.to_string().contains("node 514"), "{err}");
        }
    }

    #[test]
    fn flipped_bits_in_a_chunk_are_detected() {
        let mut t = NodeTable::new();
        for id in [0, 1, 100, 255] {
            t.set(NodeId(id), entry(3, id * 40, 16, 2));
        }
        let good = t.encode_chunk(0).unwrap();
        // Every bit of the used slots and the crc, and a stride through the
        // rest (a full sweep takes too long in a debug build).
        let used = [0..32, 100 * 16..101 * 16, 255 * 16..CHUNK_BYTES];
        let bits = used
            .into_iter()
            .flat_map(|r| r.start * 8..r.end * 8)
            .chain((0..CHUNK_BYTES * 8).step_by(61));
        for bit in bits {
            let mut b = good.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let mut fresh = NodeTable::new();
            let reason = damage_reason(fresh.load_chunk(0, &b));
            assert!(reason.contains("checksum"), "bit {bit}: {reason}");
            assert!(fresh.is_empty());
        }
    }

    #[test]
    fn a_chunk_loaded_under_another_index_is_refused() {
        let mut t = NodeTable::new();
        t.set(NodeId(1030), entry(1, 0, 1, 1));
        let b = t.encode_chunk(1).unwrap();
        let err = NodeTable::new().load_chunk(2, &b).unwrap_err();
        assert!(
            err.to_string().starts_with("node table chunk 2 is damaged"),
            "{err}"
        );
    }

    #[test]
    fn wrong_length_and_bad_slots_are_refused() {
        let mut t = NodeTable::new();
        let all_free = t.encode_chunk(MAX_CHUNK + 1).unwrap();
        assert!(damage_reason(t.load_chunk(MAX_CHUNK + 1, &all_free)).contains("no chunk"));
        let all_free = t.encode_chunk(MAX_CHUNK).unwrap();
        t.load_chunk(MAX_CHUNK, &all_free).unwrap();
        assert!(damage_reason(t.load_chunk(0, &[0; 100])).contains("100 bytes"));
        let seal = |mut b: Vec<u8>| {
            let crc = chunk_crc(0, &b[..CHUNK_BYTES - 4]);
            b[CHUNK_BYTES - 4..].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let mut b = vec![0u8; CHUNK_BYTES];
        b[24 * 3 + 12] = 1; // a refcount in segment 0
        assert!(damage_reason(t.load_chunk(0, &seal(b))).contains("node 3"));
        let mut b = vec![0u8; CHUNK_BYTES];
        b[0] = 1;
        b[8..12].copy_from_slice(&(MAX_BLOB_LEN + 1).to_le_bytes());
        assert!(damage_reason(t.load_chunk(0, &seal(b))).contains("length"));
        assert!(t.is_empty());
    }

    #[test]
    fn reloading_a_chunk_replaces_its_accounting() {
        let mut t = NodeTable::new();
        t.set(NodeId(1), entry(1, 0, 76, 1));
        let committed = t.encode_chunk(0).unwrap();
        t.set(NodeId(1), entry(2, 0, 26, 1));
        t.set(NodeId(2), entry(2, 50, 26, 1));
        assert_eq!(
            (t.live_bytes(SegmentId(1)), t.live_bytes(SegmentId(2))),
            (0, 100)
        );
        t.load_chunk(0, &committed).unwrap();
        assert_eq!(
            (t.live_bytes(SegmentId(1)), t.live_bytes(SegmentId(2))),
            (100, 0)
        );
        assert_eq!(t.len(), 1);
        assert!(t.dirty_chunks().is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u64, TableEntry),
        Remove(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let loc = proptest::option::weighted(
            0.8,
            (1u32..4, 0u64..1000, 0u32..100).prop_map(|(segment, offset, len)| Location {
                segment: SegmentId(segment),
                offset,
                len,
            }),
        );
        let id = 0u64..3000;
        prop_oneof![
            3 => (id.clone(), loc, any::<u32>())
                .prop_map(|(id, loc, refcount)| Op::Set(id, TableEntry { loc, refcount, digest: 0 })),
            1 => id.prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn table_matches_a_model_and_round_trips(ops in proptest::collection::vec(op(), 0..200)) {
            let mut t = NodeTable::new();
            let mut model = BTreeMap::new();
            for op in &ops {
                match *op {
                    Op::Set(id, e) => {
                        prop_assert_eq!(t.set(NodeId(id), e), model.insert(id, e));
                    }
                    Op::Remove(id) => {
                        prop_assert_eq!(t.remove(NodeId(id)), model.remove(&id));
                    }
                }
            }
            prop_assert_eq!(t.len(), model.len() as u64);
            let ids: Vec<u64> = t.ids().map(|id| id.0).collect();
            prop_assert_eq!(ids, model.keys().copied().collect::<Vec<_>>());
            for seg in 0..5 {
                let expected: u64 = model
                    .values()
                    .filter_map(|e| e.loc)
                    .filter(|l| l.segment == SegmentId(seg))
                    .map(|l| l.record_len())
                    .sum();
                prop_assert_eq!(t.live_bytes(SegmentId(seg)), expected);
            }
            // Chunks encode exactly when all their entries are written, and
            // a written chunk reloads to the same entries.
            let mut fresh = NodeTable::new();
            for idx in t.dirty_chunks() {
                let unwritten = model
                    .range(idx * CHUNK_ENTRIES..(idx + 1) * CHUNK_ENTRIES)
                    .any(|(_, e)| e.loc.is_none());
                match t.encode_chunk(idx) {
                    Ok(b) => {
                        prop_assert!(!unwritten);
                        fresh.load_chunk(idx, &b).unwrap();
                        for id in idx * CHUNK_ENTRIES..(idx + 1) * CHUNK_ENTRIES {
                            prop_assert_eq!(fresh.get(NodeId(id)), model.get(&id).copied());
                        }
                    }
                    Err(_) => prop_assert!(unwritten),
                }
            }
        }

        #[test]
        fn load_chunk_of_arbitrary_bytes_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            len in prop_oneof![Just(CHUNK_BYTES), 0usize..20000],
            idx in any::<u64>(),
        ) {
            let mut b = bytes;
            b.resize(len, 0);
            let mut t = NodeTable::new();
            if t.load_chunk(idx, &b).is_ok() {
                prop_assert!(t.len() <= CHUNK_ENTRIES);
            }
        }

        #[test]
        fn load_chunk_of_sealed_random_slots_never_panics(
            slots in proptest::collection::vec(any::<u8>(), 0..256),
            idx in 0..=MAX_CHUNK,
        ) {
            // A valid crc around random slots exercises the slot checks.
            let mut b = slots;
            b.resize(CHUNK_BYTES, 0);
            let crc = chunk_crc(idx, &b[..CHUNK_BYTES - 4]);
            b[CHUNK_BYTES - 4..].copy_from_slice(&crc.to_le_bytes());
            let mut t = NodeTable::new();
            if t.load_chunk(idx, &b).is_ok() {
                prop_assert_eq!(t.encode_chunk(idx).unwrap(), b);
            }
        }
    }
}
