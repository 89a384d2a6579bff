//! The store's error type.

use crate::{FormatError, NodeId};
use larix_filters::FilterError;
use std::io;
use std::sync::Arc;
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
    /// A filter failed while writing a blob.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// An earlier failure of a background write or a commit: the store
    /// refuses writes and commits until it is reopened. The last commit on
    /// disk is intact.
    #[error("the store refuses writes after an earlier failure: {0}")]
    Failed(#[source] Arc<StoreError>),
    /// A commit failed; the previous commit stays in force.
    #[error("commit failed: {reason}")]
    CommitFailed {
        /// What went wrong.
        reason: String,
    },
    /// The store was created with other parameters than those given.
    #[error("the store was created with parameters {stored:?}, not {given:?}")]
    ParametersMismatch {
        /// The parameters recorded in the store.
        stored: String,
        /// The parameters given to open it.
        given: String,
    },
    /// The store was opened read-only and a write or commit was asked for.
    #[error("the store is open read-only")]
    ReadOnly,
    /// The key check blob does not decode: the encryption key is wrong.
    #[error(
        "wrong key: the store's key check does not decrypt with the key given (or it is damaged)"
    )]
    WrongKey,
    /// A metadata blob (the catalog) decodes to nothing usable.
    #[error("the store's {what} is damaged: {reason}")]
    MetadataDamaged {
        /// Which blob.
        what: &'static str,
        /// What the decoder found.
        reason: String,
    },
}
