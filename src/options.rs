//! Options for opening a forest, as a builder.

use crate::{Error, Result};
use larix_btree::{Limits, DEFAULT_NODE_SIZE, MAX_NODE_SIZE, MIN_NODE_SIZE};
use larix_filters::FilterSpec;

/// Whether a commit waits for the data to reach stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A commit syncs before it returns: it survives a power loss.
    #[default]
    Immediate,
    /// A commit is atomic and consistent but not synced: a crash may return
    /// the store to an earlier commit.
    None,
}

/// How to open a forest. Start from [`Options::default`] and change what
/// you need; values are checked when the forest opens.
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) node_size: usize,
    pub(crate) cache_bytes: usize,
    pub(crate) workers: usize,
    pub(crate) durability: Durability,
    pub(crate) filters: Vec<FilterSpec>,
}

impl Default for Options {
    /// 16 KiB nodes, a 64 MiB cache, one worker per core, durable commits,
    /// zstd level 3 and a checksum on every node.
    fn default() -> Self {
        Options {
            node_size: DEFAULT_NODE_SIZE,
            cache_bytes: 64 << 20,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            durability: Durability::Immediate,
            filters: vec![FilterSpec::zstd(3), FilterSpec::checksum()],
        }
    }
}

impl Options {
    /// The largest encoded node, in bytes: 256 B to 1 MiB. A key plus its
    /// value may take up to a quarter of it.
    pub fn node_size(mut self, bytes: usize) -> Self {
        self.node_size = bytes;
        self
    }

    /// The memory budget of the decoded-node cache, in bytes.
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The number of background filter threads (at least 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Whether commits sync to stable storage.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The filters every node passes through on its way to disk, in order.
    pub fn filters(mut self, filters: Vec<FilterSpec>) -> Self {
        self.filters = filters;
        self
    }

    /// The options an existing store was created with: its node size and
    /// filter stack, read from its superblock. A store with an encryption
    /// filter needs `key_file` (32 raw bytes or 64 hex characters).
    ///
    /// # Errors
    /// A store error if `path` holds no readable store;
    /// [`Error::InvalidOptions`] if the store is encrypted and no key file
    /// is given, or its filter stack cannot be rebuilt.
    pub fn from_store(
        path: impl AsRef<std::path::Path>,
        key_file: Option<&std::path::Path>,
    ) -> Result<Options> {
        let _ = (path.as_ref(), key_file);
        Err(Error::Unsupported(
            "reading options from a store is not built yet",
        ))
    }

    /// The B-tree size limits these options give.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] naming the value out of range.
    pub(crate) fn validate(&self) -> Result<Limits> {
        if self.workers == 0 {
            return Err(Error::InvalidOptions(
                "workers must be at least 1".to_string(),
            ));
        }
        Limits::new(self.node_size).ok_or_else(|| {
            Error::InvalidOptions(format!(
                "node_size {} is outside {MIN_NODE_SIZE}..={MAX_NODE_SIZE} bytes",
                self.node_size
            ))
        })
    }
}
