//! Counters the store keeps about itself.

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Live nodes in the node table (committed or not).
    pub nodes: u64,
    /// Commits completed since the store was opened.
    pub commits: u64,
}
