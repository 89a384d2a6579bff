//! The store's error type.

use crate::{CodecError, FormatError, NodeId};
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
    /// A node's blob could not be turned back into a node.
    #[error("{id} is damaged: {cause}")]
    Corrupt {
        /// The damaged node.
        id: NodeId,
        /// What failed: a filter (a checksum mismatch, a decryption that
        /// failed: a wrong key or tampering), the node decoder, or the
        /// table.
        #[source]
        cause: Damage,
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
    /// A commit (or the compaction it runs) failed; the previous commit
    /// stays in force and the failure is latched.
    #[error("commit failed: {0}")]
    CommitFailed(#[source] Arc<StoreError>),
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
    /// A metadata blob (the catalog, the key check) decodes to nothing
    /// usable.
    #[error("the store's {what} is damaged: {cause}")]
    MetadataDamaged {
        /// Which blob.
        what: &'static str,
        /// What failed.
        #[source]
        cause: Damage,
    },
}

/// Why a stored blob could not be turned back into what was written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Damage {
    /// The node table has no location for a live node.
    #[error("the node table gives it no location")]
    NoLocation,
    /// A filter refused the blob (checksum mismatch, decryption failure,
    /// bad compressed data...).
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The unfiltered bytes are not a valid node.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The blob unfiltered to other bytes than it must hold.
    #[error("it decodes to the wrong bytes")]
    WrongBytes,
}
