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

use super::{read_node_blob, NodeStore, Shared};
use crate::{
    read_blob, BlobKind, Codec, Directory, FileId, FormatError, Location, NodeTable, SegmentId,
    StoreError, Superblock,
};
use rustc_hash::FxHashMap;

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
        let live = self.shared.live_now();
        let backend = &*self.shared.backend;
        let segments = backend
            .segments()
            .map_err(|e| FormatError::io("the store directory".into(), None, e))?;
        segments
            .into_iter()
            .map(|seg| {
                let file = FileId::Segment(seg);
                let total_bytes = backend
                    .len(file)
                    .map_err(|e| FormatError::io(backend.name(file), None, e))?;
                Ok(SegmentStats {
                    segment: seg.0,
                    live_bytes: live.get(&seg).copied().unwrap_or(0),
                    total_bytes,
                })
            })
            .collect()
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
        self.compact_step(max_live_ratio, max_bytes, 0)
    }

    /// One round of compaction; see [`NodeStore::compact`]. The segment
    /// being appended to is sealed and compacted only if it is sparse and
    /// at least `seal_min_bytes` long.
    pub(super) fn compact_step(
        &self,
        max_live_ratio: f64,
        max_bytes: u64,
        seal_min_bytes: u64,
    ) -> Result<u64, StoreError> {
        let shared = &*self.shared;
        let sparse =
            |u: &SegmentStats| (u.live_bytes as f64) < max_live_ratio * u.total_bytes as f64;
        let usage = self.segment_usage()?;
        {
            let mut writer = shared.writer.lock();
            let current = writer.segment().0;
            if usage
                .iter()
                .any(|u| u.segment == current && u.total_bytes >= seal_min_bytes && sparse(u))
            {
                writer.roll()?;
            }
        }
        let current = shared.writer.lock().segment();
        let obsolete = shared.state.lock().obsolete.clone();
        let mut candidates: Vec<SegmentStats> = usage
            .into_iter()
            .filter(|u| {
                let seg = SegmentId(u.segment);
                seg != current && !obsolete.contains(&seg) && sparse(u)
            })
            .collect();
        candidates.sort_by(|a, b| {
            let ratio = |u: &SegmentStats| u.live_bytes as f64 / u.total_bytes.max(1) as f64;
            ratio(a).total_cmp(&ratio(b))
        });
        let mut copied = 0;
        for usage in candidates {
            if copied >= max_bytes {
                break;
            }
            let seg = SegmentId(usage.segment);
            match shared.evacuate(seg, max_bytes - copied) {
                Ok((bytes, done)) => {
                    copied += bytes;
                    if done {
                        shared.state.lock().obsolete.insert(seg);
                    }
                }
                Err(e @ StoreError::Format(FormatError::Blob { .. })) => {
                    // A damaged live blob: keep the segment, report.
                    return Err(e);
                }
                Err(e) => return Err(shared.fail(e)),
            }
        }
        Ok(copied)
    }
}

impl<N: Codec> Shared<N> {
    /// Live bytes per segment as the store stands now: what pins dropped
    /// so far let go is freed first, whether or not the release thread got
    /// to it yet.
    pub(super) fn live_now(&self) -> FxHashMap<SegmentId, u64> {
        self.release_now();
        let st = self.state.lock();
        let mut live = live_by_segment(
            &st.table,
            &st.committed.directory,
            &st.committed.superblock,
            st.key_check,
        );
        // A running checkpoint's frozen table may still point where the
        // live one no longer does.
        if let Some(f) = &st.frozen {
            for (seg, bytes) in f.table.live_by_segment() {
                *live.entry(seg).or_insert(0) += bytes;
            }
        }
        live
    }

    /// Copies the live blobs of `seg` forward, at most about `budget`
    /// bytes. Returns the bytes copied and whether nothing live is left.
    fn evacuate(&self, seg: SegmentId, budget: u64) -> Result<(u64, bool), StoreError> {
        let backend = &*self.backend;
        let entries = self.state.lock().table.entries_in(seg);
        let mut copied = 0;
        for (id, loc, digest) in entries {
            if copied >= budget {
                return Ok((copied, false));
            }
            // A damaged live blob is not copied: its segment stays and
            // `check` reports it.
            let body = read_node_blob(backend, id, loc, digest)?;
            let new = self
                .writer
                .lock()
                .append(backend, BlobKind::Node, id.0, &body)?;
            copied += new.record_len();
            let mut st = self.state.lock();
            if let Some(mut entry) = st.table.get(id).filter(|e| e.loc == Some(loc)) {
                entry.loc = Some(new);
                st.table.set(id, entry);
            }
        }
        let key_check = {
            let mut st = self.state.lock();
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
            st.key_check.filter(|l| l.segment == seg)
        };
        if let Some(loc) = key_check {
            let body = read_blob(backend, loc, BlobKind::KeyCheck, 0)?;
            let new = self
                .writer
                .lock()
                .append(backend, BlobKind::KeyCheck, 0, &body)?;
            copied += new.record_len();
            self.state.lock().key_check = Some(new);
        }
        Ok((copied, true))
    }

    /// Removes the obsolete segments nothing refers to any more. Called
    /// after a durable superblock write.
    pub(super) fn remove_obsolete(&self) -> Result<(), StoreError> {
        let live = self.live_now();
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
