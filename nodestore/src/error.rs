//! The store's error type.

use crate::NodeId;
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
}
