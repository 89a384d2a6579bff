//! Counters the store keeps about itself.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// A snapshot of the counters of a store (and of the forest on it:
/// `larix::Stats` is this type).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Live B-tree nodes (committed or not); 0 when there are no trees.
    pub nodes: u64,
    /// Number of trees (filled in by the forest; 0 from a bare store).
    pub trees: u64,
    /// Nodes no tree holds any more, kept readable for live snapshots and
    /// for a rollback to the last commit (not counted in `nodes`).
    pub retired_nodes: u64,
    /// Live read pins: snapshots, range iterators, diffs, and the last
    /// commit's.
    pub pins: u64,
    /// Commits (log records that end a committed group) since the store
    /// was opened.
    pub commits: u64,
    /// Reads served from the decoded-node cache.
    pub cache_hits: u64,
    /// Reads a view served from the nodes it keeps: its root and the
    /// root's children, and below them the index nodes and live leaf
    /// references its point reads left (`docs/design.md`, "Read snapshots
    /// and pins").
    pub kept_hits: u64,
    /// Reads that went to disk.
    pub cache_misses: u64,
    /// Reads served from the dirty queue.
    pub dirty_hits: u64,
    /// Reads served from an in-flight write's pending buffer.
    pub inflight_hits: u64,
    /// Times a caller waited for in-flight writes to land.
    pub inflight_waits: u64,
    /// Node blobs written.
    pub blobs_written: u64,
    /// Bytes of those nodes before filtering.
    pub bytes_unfiltered: u64,
    /// Bytes of their blob bodies after filtering.
    pub bytes_filtered: u64,
    /// Time spent syncing files.
    pub sync_time: Duration,
    /// Commit log records appended since the store was opened.
    pub log_records: u64,
    /// Bytes of those records (headers included).
    pub log_bytes: u64,
    /// Syncs of log files.
    pub log_syncs: u64,
    /// Checkpoints completed since the store was opened.
    pub checkpoints: u64,
    /// Bytes of commit log the next checkpoint drops: what this session
    /// logged since the last checkpoint and what it replayed at open.
    pub log_since_checkpoint: u64,
    /// Memory held by the clean cache's decoded nodes (as counted against
    /// the cache budget).
    pub cached_bytes: u64,
    /// Memory held by decoded nodes changed since the last checkpoint and
    /// not yet handed to the workers (the dirty queue).
    pub dirty_bytes: u64,
    /// Memory held by nodes handed to the workers and not yet written.
    pub inflight_bytes: u64,
    /// Memory held by the trees' write buffers: batched pairs not yet
    /// applied to their trees (filled in by the forest; 0 from a bare
    /// store).
    pub write_buffer_bytes: u64,
    /// Bytes of all segment files.
    pub disk_bytes: u64,
    /// Bytes of the records the committed state and the node table refer
    /// to (nodes, table chunks, directory, catalog, key check).
    pub live_bytes: u64,
    /// Live and total bytes of each segment file, by segment.
    pub segments: Vec<crate::SegmentStats>,
    /// What opening the store noticed and worked around, one line each.
    pub warnings: Vec<String>,
}

impl Stats {
    /// Nodes read, wherever they were found: the cache, the dirty queue,
    /// the in-flight map, the disk (a cache miss) or what a view keeps.
    pub fn node_reads(&self) -> u64 {
        self.cache_hits + self.cache_misses + self.dirty_hits + self.inflight_hits + self.kept_hits
    }

    /// Bytes on disk per live byte (1.0 when nothing is dead; 0.0 for a
    /// store with nothing live).
    pub fn space_amplification(&self) -> f64 {
        if self.live_bytes == 0 {
            0.0
        } else {
            self.disk_bytes as f64 / self.live_bytes as f64
        }
    }
}

/// Adds `n` to a counter (relaxed: counters order nothing).
pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Stripes of a [`Striped`] counter.
const STRIPES: usize = 8;

/// A counter bumped on every read, from any number of threads: each
/// thread adds to a stripe of its own, on a cache line of its own, and a
/// reading sums the stripes. One shared counter passes its line between
/// the cores of concurrent readers on every bump.
#[derive(Default)]
pub(crate) struct Striped([CachePadded<AtomicU64>; STRIPES]);

impl Striped {
    /// Adds `n` (relaxed: counters order nothing).
    pub(crate) fn bump(&self, n: u64) {
        self.0[stripe()].fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of the stripes.
    pub(crate) fn get(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// This thread's stripe: threads take stripes in turn as they first bump.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    // A thread being torn down shares the first stripe.
    STRIPE.try_with(|s| *s).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_striped_counter_sums_every_threads_bumps() {
        let c = Striped::default();
        // More threads than stripes, so some share one.
        std::thread::scope(|s| {
            for t in 0..(2 * STRIPES as u64 + 3) {
                let c = &c;
                s.spawn(move || {
                    for _ in 0..1_000 {
                        c.bump(t + 1);
                    }
                });
            }
        });
        let threads = 2 * STRIPES as u64 + 3;
        assert_eq!(c.get(), 1_000 * threads * (threads + 1) / 2);
    }
}
