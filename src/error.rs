//! The public error type.

use larix_filters::FilterError;
use larix_nodestore::StoreError;
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
    /// A tree name that cannot be stored.
    #[error("invalid tree name {name:?}: {reason}")]
    InvalidTreeName {
        /// The rejected name (its first 64 characters).
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A key plus value larger than the node size allows.
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
    /// An option is out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// Stored data breaks the structure Larix relies on.
    #[error("corruption: {0}")]
    Corrupt(String),
    /// A filter failed.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The node store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shorthand for results of Larix calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<larix_btree::Error> for Error {
    fn from(e: larix_btree::Error) -> Self {
        use larix_btree::Error as B;
        match e {
            B::TreeExists { name } => Error::TreeExists { name },
            B::TreeNotFound { name } => Error::TreeNotFound { name },
            B::InvalidTreeName { name, reason } => Error::InvalidTreeName { name, reason },
            B::EntryTooLarge {
                key_len,
                value_len,
                limit,
            } => Error::EntryTooLarge {
                key_len,
                value_len,
                limit,
            },
            B::Store(s) => Error::Store(s),
            other => Error::Corrupt(other.to_string()),
        }
    }
}
