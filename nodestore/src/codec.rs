//! The contract between the store and the node type it holds.

use std::borrow::Cow;
use thiserror::Error;

/// Why bytes could not be decoded as a node.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// A node type the store can keep: it turns itself into bytes and back.
///
/// `decode` must never panic and never allocate more than a small multiple
/// of its input, whatever the bytes: they may come from a damaged file.
pub trait Codec: Sized + Send + Sync + 'static {
    /// Appends the node's encoded bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Rebuilds a node from bytes produced by [`Codec::encode`].
    ///
    /// # Errors
    /// [`CodecError`] describing the first inconsistency found.
    fn decode(bytes: &[u8]) -> Result<Self, CodecError>;

    /// Approximate bytes of memory the decoded node occupies, for the cache
    /// budget.
    fn mem_size(&self) -> usize;

    /// [`Codec::decode`] of bytes the caller gives up: a node kept in its
    /// encoded form can take them without a copy.
    ///
    /// # Errors
    /// As [`Codec::decode`].
    fn decode_owned(bytes: Vec<u8>) -> Result<Self, CodecError> {
        Self::decode(&bytes)
    }

    /// The node's encoded bytes: borrowed where the node keeps them, so
    /// writing a node through an empty filter stack copies nothing.
    fn encoded(&self) -> Cow<'_, [u8]> {
        let mut out = Vec::new();
        self.encode(&mut out);
        Cow::Owned(out)
    }
}
