//! The store's error type.

use crate::{FormatError, NodeId};
use std::io;
use thiserror::Error;

/// Everything that can go wrong in the node store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The id names no live node: never allocated, or already freed.
    #[error("{id} does not exist in the node store")]
    NodeMissing {
        /// The id asked for.
        id: NodeId,
    },
    /// A node's bytes could not be decoded.
    #[error("{id} is damaged: {reason}")]
    Corrupt {
        /// The damaged node.
        id: NodeId,
        /// What the decoder found.
        reason: String,
    },
    /// Reading or writing the store's files failed, or their bytes are
    /// damaged.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// An I/O call on one of the store's files failed.
    #[error("I/O error on {file}: {source}")]
    Io {
        /// The file, as the backend names it.
        file: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}
