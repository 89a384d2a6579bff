//! Size limits derived from the configured node size.
//!
//! With `N` the node size: every node encodes to at most `N` bytes, every
//! node but a root to at least `N / 4`, and a key plus its value may take
//! up to `N / 4` bytes. These bounds make splits and merges always land in
//! range (the argument is in `docs/design.md`, "Split and merge policy").

/// The smallest node size accepted.
pub const MIN_NODE_SIZE: usize = 256;
/// The largest node size accepted.
pub const MAX_NODE_SIZE: usize = 1 << 20;
/// The default node size.
pub const DEFAULT_NODE_SIZE: usize = 4 * 1024;

/// Size bounds for one forest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    node_size: usize,
}

impl Limits {
    /// Limits for `node_size`, or `None` outside
    /// [`MIN_NODE_SIZE`]..=[`MAX_NODE_SIZE`].
    pub fn new(node_size: usize) -> Option<Limits> {
        (MIN_NODE_SIZE..=MAX_NODE_SIZE)
            .contains(&node_size)
            .then_some(Limits { node_size })
    }

    /// Largest encoded node.
    pub fn max_node(&self) -> usize {
        self.node_size
    }

    /// Smallest encoded node other than a root.
    pub fn min_node(&self) -> usize {
        self.node_size / 4
    }

    /// Largest key length plus value length of a value held in a leaf;
    /// a longer value is stored out of line.
    pub fn max_entry(&self) -> usize {
        self.node_size / 4
    }

    /// Longest key: one whose entry still fits with a reference to an
    /// out-of-line value ([`Limits::max_entry`] less 16 bytes), so that a
    /// key accepted with one value is accepted with any.
    pub fn max_key(&self) -> usize {
        self.max_entry() - crate::node::REF_LEN
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            node_size: DEFAULT_NODE_SIZE,
        }
    }
}
