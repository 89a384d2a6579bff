//! The error type of Larix: the B-tree's, and the public one (`larix`
//! re-exports it), so that an error is declared once.

use larix_nodestore::{FilterError, StoreError};
use thiserror::Error;

/// Everything a Larix call can fail with. Each message names the tree,
/// key length, node or file involved.
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
    /// A new tree would make the catalog larger than it may be.
    #[error("the catalog of {trees} trees is full: a forest's tree names and roots take at most {limit} bytes")]
    CatalogFull {
        /// Trees in the catalog.
        trees: usize,
        /// The most bytes the encoded catalog may take.
        limit: usize,
    },
    /// A tree name that cannot be stored (empty, or too long).
    #[error("invalid tree name {name:?}: {reason}")]
    InvalidTreeName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A key plus value larger than the node size allows. No longer
    /// returned: a value too large for a leaf is stored out of line, and
    /// keys and values have limits of their own ([`Error::KeyTooLarge`],
    /// [`Error::ValueTooLarge`]). Kept so that code matching on it builds.
    #[error(
        "entry too large: key of {key_len} bytes plus value of {value_len} bytes exceeds the limit of {limit} bytes (a quarter of the node size)"
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
    /// A pointer leads to a node of the wrong kind (an index entry to a
    /// value chunk, a leaf's value reference to a leaf): the store is
    /// damaged.
    #[error("damaged tree: {id} is a {found} where a {expected} belongs")]
    NodeKind {
        /// The node pointed at.
        id: larix_nodestore::NodeId,
        /// What the pointer requires.
        expected: &'static str,
        /// What the node is.
        found: &'static str,
    },
    /// A key longer than a leaf can hold.
    #[error("key too large: {key_len} bytes exceeds the limit of {limit} bytes (a quarter of the node size, less a value reference)")]
    KeyTooLarge {
        /// Length of the key.
        key_len: usize,
        /// The longest key accepted.
        limit: usize,
    },
    /// A value longer than 1 GiB.
    #[error("value too large: {value_len} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// Length of the value.
        value_len: u64,
        /// The longest value accepted.
        limit: u64,
    },
    /// An out-of-line value's nodes do not hold what its reference says.
    #[error("damaged value {id}: {reason}")]
    DamagedValue {
        /// The value's node.
        id: larix_nodestore::NodeId,
        /// What is wrong.
        reason: String,
    },
    /// Reading the value to insert from the caller's reader failed, or it
    /// ended before the length given.
    #[error("reading the value to insert: {0}")]
    ValueSource(#[source] std::io::Error),
    /// The commit log holds an operation that cannot be decoded or
    /// replayed.
    #[error("the commit log is damaged: {0}")]
    CorruptLog(String),
    /// The stored catalog of trees could not be decoded.
    #[error("the tree catalog is damaged: {0}")]
    CorruptCatalog(String),
    /// An option is out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// The store pipes its nodes through an external command, and the
    /// caller did not name that command itself: Larix never runs a command
    /// on the word of a store, which anyone may have made.
    #[error(
        "the store filters its nodes through the command {encode:?} / {decode:?}, which Larix \
         will not run on the store's say-so: name it yourself \
         (larix --filter-command {encode:?} {decode:?}, or Options::from_store_with_command)"
    )]
    UntrustedCommand {
        /// The encoding command the store records, its words joined by spaces.
        encode: String,
        /// The decoding command the store records.
        decode: String,
    },
    /// A filter failed (building a pipeline, reading a key file).
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The node store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
