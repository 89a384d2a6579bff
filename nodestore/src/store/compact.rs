//! Compaction: copying the live blobs of sparse segments forward so that
//! the segments can be removed.
//!
//! A blob is filtered with its node id as context and never with its
//! location, so a live blob is copied as it is, without unfiltering or
//! decoding it. The node table takes the new location only if it still
//! points at the old one (the node was not rewritten or freed meanwhile).
//! Table chunks stored in the segment are marked dirty so the commit that
//! follows writes them elsewhere; the directory and the catalog are written
//! by every commit anyway, and the key check blob is copied. A segment whose
//! live blobs have all moved is obsolete: it is removed once a durable
//! superblock no longer refers to it (invariant S9), so a crash at any point
//! leaves either the old segment in use or a segment nothing refers to,
//! which the next open removes.

use super::{read_node_blob, NodeStore, Shared, State};
use crate::{
    read_blob, BlobKind, Codec, Directory, FileId, FormatError, Location, NodeId, NodeTable,
    SegmentId, StoreError, Superblock, TableEntry,
};
use rustc_hash::FxHashMap;
use std::io;

/// The current segment is sealed for compaction by the policy only once it
/// is this long, so that small stores do not churn tiny segments.
pub(super) const POLICY_SEAL_MIN_BYTES: u64 = 1 << 20;

/// The least the policy may copy in one commit, however small the commit.
pub(super) const POLICY_MIN_BYTES: u64 = 1 << 20;

/// The smallest [`CompactionPolicy::bytes_per_commit`] accepted: the least
/// the policy copies in one commit.
pub const MIN_COMPACTION_BYTES_PER_COMMIT: u64 = POLICY_MIN_BYTES;

/// How much compaction each commit does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompactionPolicy {
    /// Segments whose live bytes are below this share of their size are
    /// rewritten (0.0 to 1.0).
    pub max_live_ratio: f64,
    /// At most this many bytes are copied per commit (the bound on the
    /// write rate compaction adds). Within it, a commit copies about as
    /// many bytes as it writes itself, and at least 1 MiB.
    pub bytes_per_commit: u64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_live_ratio: 0.5,
            bytes_per_commit: 16 << 20,
        }
    }
}

/// The space one segment file takes and how much of it is still in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentStats {
    /// The segment.
    pub segment: u32,
    /// Bytes of the records the store still refers to.
    pub live_bytes: u64,
    /// Bytes of the file.
    pub total_bytes: u64,
}

/// Live record bytes per segment: the nodes of `table`, the chunks of
/// `directory`, and the directory, catalog and key check blobs of `sb`.
pub(super) fn live_by_segment(
    table: &NodeTable,
    directory: &Directory,
    sb: &Superblock,
    key_check: Option<Location>,
) -> FxHashMap<SegmentId, u64> {
    let mut live: FxHashMap<SegmentId, u64> = table.live_by_segment().collect();
    let meta = directory
        .iter()
        .map(|(_, loc)| loc)
        .chain(sb.table_directory)
        .chain(sb.catalog)
        .chain(key_check);
    for loc in meta {
        *live.entry(loc.segment).or_insert(0) += loc.record_len();
    }
    live
}

impl<N: Codec> NodeStore<N> {
    /// Live and total bytes of every segment file, by ascending segment.
    ///
    /// # Errors
    /// A store error if the segment files cannot be listed or measured.
    pub fn segment_usage(&self) -> Result<Vec<SegmentStats>, StoreError> {
        self.shared.segment_usage(true)
    }

    /// Copies the live blobs of every segment whose live share is below
    /// `max_live_ratio` (sealing the current segment first if it is such a
    /// segment), up to `max_bytes` copied. The copies and the segments they
    /// empty take effect at the next commit, which then removes them.
    /// Returns the bytes copied.
    ///
    /// The caller holds the writer's lock (no tree operation runs).
    ///
    /// # Errors
    /// A latched failure; a read error of a live blob (its segment is then
    /// kept); a write error, which is latched.
    pub fn compact(&self, max_live_ratio: f64, max_bytes: u64) -> Result<u64, StoreError> {
        self.writable()?;
        // A running checkpoint's table may still point into the segments
        // this empties, and its end would remove them.
        self.wait_checkpoint()?;
        let usage = self.segment_usage()?;
        let plan = self.plan_evacuation(usage, max_live_ratio, max_bytes, 0)?;
        self.shared.evacuate(plan)
    }

    /// Chooses what a round of compaction copies: the live blobs of the
    /// sparsest segments by `usage`, at most about `max_bytes` of them, as
    /// the table places them now (but for retired nodes no pin needs,
    /// which the release thread frees). Marks their table chunks (and the
    /// table chunks stored in a segment chosen whole) changed, so that a
    /// checkpoint frozen before the copies are made holds them, and the
    /// copies can fill in its table (see [`Shared::evacuate`]). Reads no
    /// blob. The segment being appended to is sealed and chosen only if it
    /// is sparse and at least `seal_min_bytes` long.
    pub(super) fn plan_evacuation(
        &self,
        usage: Vec<SegmentStats>,
        max_live_ratio: f64,
        max_bytes: u64,
        seal_min_bytes: u64,
    ) -> Result<Evacuation, StoreError> {
        let shared = &*self.shared;
        let sparse =
            |u: &SegmentStats| (u.live_bytes as f64) < max_live_ratio * u.total_bytes as f64;
        let current = {
            let mut writer = shared.writer.lock();
            let current = writer.segment().0;
            if usage
                .iter()
                .any(|u| u.segment == current && u.total_bytes >= seal_min_bytes && sparse(u))
            {
                writer.roll()?;
            }
            writer.segment()
        };
        let pins = shared.pins.live_marks();
        let mut st = shared.state.lock();
        let mut candidates: Vec<SegmentStats> = usage
            .into_iter()
            .filter(|u| {
                let seg = SegmentId(u.segment);
                seg != current && !st.obsolete.contains(&seg) && sparse(u)
            })
            .collect();
        candidates.sort_by(|a, b| {
            let ratio = |u: &SegmentStats| u.live_bytes as f64 / u.total_bytes.max(1) as f64;
            ratio(a).total_cmp(&ratio(b))
        });
        // Enough of the sparsest to fill the budget with their live bytes.
        let mut enough = 0;
        let chosen: Vec<SegmentId> = candidates
            .iter()
            .take_while(|u| {
                let more = enough < max_bytes;
                enough += u.live_bytes;
                more
            })
            .map(|u| SegmentId(u.segment))
            .collect();
        let mut entries = st.table.entries_in(&chosen);
        let mut plan = Evacuation::default();
        let mut planned = 0;
        for seg in chosen {
            if planned >= max_bytes {
                break;
            }
            let mut blobs = entries.remove(&seg).unwrap_or_default();
            blobs.retain(|&(id, _, _)| !shared.releasable(&st, &pins, id));
            let mut whole = true;
            let mut bytes = 0;
            for (i, (_, loc, _)) in blobs.iter().enumerate() {
                if planned + bytes >= max_bytes {
                    blobs.truncate(i);
                    whole = false;
                    break;
                }
                bytes += loc.record_len();
            }
            planned += bytes;
            for &(id, _, _) in &blobs {
                st.table.mark_dirty_id(id);
            }
            if whole {
                let chunks: Vec<u64> = st
                    .committed
                    .directory
                    .iter()
                    .filter(|(_, l)| l.segment == seg)
                    .map(|(idx, _)| idx)
                    .collect();
                for idx in chunks {
                    st.table.mark_dirty(idx);
                }
                if let Some(loc) = st.key_check.filter(|l| l.segment == seg) {
                    plan.key_check = Some(loc);
                }
            }
            plan.segments.push(Planned { seg, blobs, whole });
        }
        Ok(plan)
    }
}

/// What a round of compaction copies ([`NodeStore::plan_evacuation`]).
#[derive(Default)]
pub(super) struct Evacuation {
    segments: Vec<Planned>,
    /// The key check blob, if it lies in a segment emptied whole.
    key_check: Option<Location>,
}

/// One segment's share of an [`Evacuation`].
struct Planned {
    seg: SegmentId,
    /// The live node blobs to copy: id, location, digest.
    blobs: Vec<(NodeId, Location, u64)>,
    /// Whether they are all the segment's: once copied, it is obsolete.
    whole: bool,
}

impl<N: Codec> Shared<N> {
    /// [`NodeStore::segment_usage`]; with `release`, what pins dropped so
    /// far let go is freed first, else only weighed as dead (see
    /// [`Shared::live_now`]).
    pub(super) fn segment_usage(&self, release: bool) -> Result<Vec<SegmentStats>, StoreError> {
        let live = self.live_now(release);
        let backend = &*self.backend;
        let segments = backend
            .segments()
            .map_err(|e| FormatError::io("the store directory".into(), None, e))?;
        let mut usage = Vec::with_capacity(segments.len());
        for seg in segments {
            let file = FileId::Segment(seg);
            let live_bytes = live.get(&seg).copied().unwrap_or(0);
            let total_bytes = match backend.len(file) {
                Ok(len) => len,
                // Removed since the listing (a checkpoint removes the
                // segments nothing lives in any more): not the store's.
                Err(e) if e.kind() == io::ErrorKind::NotFound && live_bytes == 0 => continue,
                Err(e) => return Err(FormatError::io(backend.name(file), None, e).into()),
            };
            usage.push(SegmentStats {
                segment: seg.0,
                live_bytes,
                total_bytes,
            });
        }
        Ok(usage)
    }

    /// Live bytes per segment as the store stands now: what pins dropped
    /// so far let go counts as dead, whether or not the release thread got
    /// to it yet. With `release` it is freed first; else it is weighed
    /// where it lies ([`Shared::releasable_bytes`]).
    pub(super) fn live_now(&self, release: bool) -> FxHashMap<SegmentId, u64> {
        if release {
            self.release_now();
        }
        let st = self.state.lock();
        let mut live = live_by_segment(
            &st.table,
            &st.committed.directory,
            &st.committed.superblock,
            st.key_check,
        );
        if !release {
            for (seg, bytes) in self.releasable_bytes(&st) {
                if let Some(l) = live.get_mut(&seg) {
                    *l = l.saturating_sub(bytes);
                }
            }
        }
        // A running checkpoint's frozen table may still point where the
        // live one no longer does.
        if let Some(f) = &st.frozen {
            for (seg, bytes) in f.table.live_by_segment() {
                *live.entry(seg).or_insert(0) += bytes;
            }
        }
        live
    }

    /// Copies the blobs `plan` chose, raw, and returns the bytes copied;
    /// a segment chosen whole is then obsolete. Tree operations and a
    /// checkpoint frozen after the plan may go on meanwhile: a copy becomes
    /// a node's location in the live table, and in the frozen one, only
    /// where that still holds the location the blob was read from (the
    /// node was not rewritten or freed meanwhile). The blobs are read and
    /// appended a write's worth at a time
    /// ([`WRITE_BYTES`](super::workers::WRITE_BYTES)), without the state
    /// lock.
    pub(super) fn evacuate(&self, plan: Evacuation) -> Result<u64, StoreError> {
        let backend = &*self.backend;
        let mut copied = 0;
        for Planned { seg, blobs, whole } in plan.segments {
            let size = |&(_, loc, _): &(NodeId, Location, u64)| u64::from(loc.len);
            for batch in super::workers::write_runs(&blobs, size) {
                // A damaged live blob is not copied: its segment stays and
                // `check` reports it.
                let bodies = batch
                    .iter()
                    .map(|&(id, loc, digest)| read_node_blob(backend, id, loc, digest))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| self.unless_damage(e))?;
                let records: Vec<_> = batch
                    .iter()
                    .zip(&bodies)
                    .map(|(&(id, _, _), body)| (BlobKind::Node, id.0, &body[..]))
                    .collect();
                let news = self
                    .writer
                    .lock()
                    .append_all(backend, &records)
                    .map_err(|e| self.fail(e.into()))?;
                copied += news.iter().map(Location::record_len).sum::<u64>();
                let mut st = self.state.lock();
                for (&(id, loc, _), new) in batch.iter().zip(news) {
                    moved(&mut st, id, loc, new);
                }
            }
            if whole {
                self.state.lock().obsolete.insert(seg);
            }
        }
        if let Some(loc) = plan.key_check {
            let body = read_blob(backend, loc, BlobKind::KeyCheck, 0)
                .map_err(|e| self.unless_damage(e.into()))?;
            let new = self
                .writer
                .lock()
                .append(backend, BlobKind::KeyCheck, 0, &body)
                .map_err(|e| self.fail(e.into()))?;
            copied += new.record_len();
            let mut st = self.state.lock();
            if st.key_check == Some(loc) {
                st.key_check = Some(new);
            }
            if let Some(f) = st.frozen.as_mut().filter(|f| f.key_check == Some(loc)) {
                f.key_check = Some(new);
            }
        }
        Ok(copied)
    }

    /// A damaged blob as it is (its segment is kept, and `check` reports
    /// it); any other failure latched.
    fn unless_damage(&self, e: StoreError) -> StoreError {
        match e {
            e @ StoreError::Format(FormatError::Blob { .. }) => e,
            e => self.fail(e),
        }
    }

    /// Removes the obsolete segments nothing refers to any more. Called
    /// after a durable superblock write.
    pub(super) fn remove_obsolete(&self) -> Result<(), StoreError> {
        let live = self.live_now(true);
        let removable: Vec<SegmentId> = {
            let mut st = self.state.lock();
            let gone: Vec<SegmentId> = st
                .obsolete
                .iter()
                .copied()
                .filter(|s| !live.contains_key(s))
                .collect();
            for s in &gone {
                st.obsolete.remove(s);
            }
            gone
        };
        if removable.is_empty() {
            return Ok(());
        }
        super::recovery::remove_segments(&*self.backend, |s| removable.contains(&s))
    }
}

/// Points node `id` at `new`, its blob's copy, in the live table and in a
/// running checkpoint's frozen one, wherever that still holds `old`, the
/// location the copy was read from.
fn moved<N>(st: &mut State<N>, id: NodeId, old: Location, new: Location) {
    let moved = |e: &TableEntry| TableEntry {
        loc: Some(new),
        ..*e
    };
    let frozen = st.frozen.as_mut().and_then(|f| {
        let entry = f.table.get(id).filter(|e| e.loc == Some(old))?;
        f.table.set(id, moved(&entry));
        Some(entry)
    });
    if let Some(entry) = st.table.get(id).filter(|e| e.loc == Some(old)) {
        // The same change in the frozen chunk leaves the live one as clean
        // as it was (as a landing write does).
        if frozen.is_some() {
            st.table.set_unmarked(id, moved(&entry));
        } else {
            st.table.set(id, moved(&entry));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_codec::{node, SizedNode};
    use crate::backend::{Backend, FileId, MemBackend};
    use crate::{NodeStore, SegmentId, StoreConfig};
    use larix_filters::Pipeline;
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A backend whose listing, once `stale`, names one segment more than
    /// it holds, as a listing made just before a checkpoint removed that
    /// segment would.
    #[derive(Debug)]
    struct Stale(MemBackend, AtomicBool);

    const GONE: FileId = FileId::Segment(SegmentId(9_999));

    impl Backend for Stale {
        fn read_at(&self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            self.0.read_at(file, offset, buf)
        }
        fn write_at(&self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
            self.0.write_at(file, offset, data)
        }
        fn create_whole(&self, file: FileId, data: &[u8]) -> io::Result<()> {
            self.0.create_whole(file, data)
        }
        fn len(&self, file: FileId) -> io::Result<u64> {
            self.0.len(file)
        }
        fn sync(&self, file: FileId) -> io::Result<()> {
            self.0.sync(file)
        }
        fn sync_dir(&self) -> io::Result<()> {
            self.0.sync_dir()
        }
        fn remove(&self, file: FileId) -> io::Result<()> {
            self.0.remove(file)
        }
        fn list(&self) -> io::Result<Vec<FileId>> {
            let mut files = self.0.list()?;
            if self.1.load(Ordering::Relaxed) {
                files.push(GONE);
            }
            Ok(files)
        }
    }

    /// A segment removed between the listing and its length is no longer
    /// the store's: `stats()` reported no segment at all (and a disk of 0
    /// bytes) when a checkpoint removed one in that window.
    #[test]
    fn a_segment_removed_while_usage_is_taken_is_left_out() {
        let backend = Arc::new(Stale(MemBackend::new(), AtomicBool::new(false)));
        let store = NodeStore::<SizedNode>::open(
            Arc::clone(&backend) as Arc<dyn Backend>,
            Pipeline::new(&[]).unwrap(),
            StoreConfig::default(),
        )
        .unwrap();
        store.put(store.allocate(), node(100)).unwrap();
        store.checkpoint(b"catalog", true).unwrap();
        backend.1.store(true, Ordering::Relaxed);
        let usage = store.segment_usage().unwrap();
        assert!(!usage.is_empty());
        assert!(usage.iter().all(|s| s.segment != 9_999), "{usage:?}");
        assert!(!store.stats().segments.is_empty());
    }
}
