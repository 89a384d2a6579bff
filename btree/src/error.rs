//! The B-tree's error type.

use larix_nodestore::StoreError;
use thiserror::Error;

/// Everything a tree or forest operation can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// `create_tree` or `clone_tree` named a tree that already exists.
    #[error("tree {name:?} already exists")]
    TreeExists {
        /// The tree's name.
        name: String,
    },
    /// The named tree does not exist (or was removed).
    #[error("tree {name:?} does not exist")]
    TreeNotFound {
        /// The tree's name.
        name: String,
    },
    /// A tree name that cannot be stored (empty, or too long).
    #[error("invalid tree name {name:?}: {reason}")]
    InvalidTreeName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A key plus value larger than the node size allows.
    #[error(
        "entry too large: key of {key_len} bytes plus value of {value_len} bytes exceeds the limit of {limit} bytes for this node size"
    )]
    EntryTooLarge {
        /// Length of the key.
        key_len: usize,
        /// Length of the value.
        value_len: usize,
        /// The largest key length plus value length accepted.
        limit: usize,
    },
    /// A stored node does not sit one level below its parent (invariant
    /// B2): the tree is damaged, and following it could loop.
    #[error("damaged tree: {id} is at level {found} where its parent needs level {expected}")]
    LevelMismatch {
        /// The child node.
        id: larix_nodestore::NodeId,
        /// The level its parent requires.
        expected: u8,
        /// The level it has.
        found: u8,
    },
    /// The stored catalog of trees could not be decoded.
    #[error("the tree catalog is damaged: {0}")]
    CorruptCatalog(String),
    /// The node store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
