//! Counters the store keeps about itself.

use std::time::Duration;

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Live nodes in the node table (committed or not).
    pub nodes: u64,
    /// Commits completed since the store was opened.
    pub commits: u64,
    /// Reads served from the decoded-node cache.
    pub cache_hits: u64,
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
    /// Bytes of all segment files.
    pub disk_bytes: u64,
    /// Bytes of the records the committed state and the node table refer
    /// to (nodes, table chunks, directory, catalog, key check).
    pub live_bytes: u64,
    /// Live and total bytes of each segment file.
    pub segments: Vec<crate::SegmentUsage>,
}
