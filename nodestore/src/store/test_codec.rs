//! The node type of the store's unit tests: a node is only its size, so a
//! test can fill the queue, the cache and the in-flight map to exact byte
//! counts.

use crate::{Codec, CodecError};
use std::sync::Arc;

/// A node of `.0` bytes (encoded as that many zeros).
#[derive(Debug, PartialEq)]
pub(super) struct SizedNode(pub(super) usize);

impl Codec for SizedNode {
    fn encode(&self, out: &mut Vec<u8>) {
        out.resize(self.0, 0);
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        Ok(SizedNode(bytes.len()))
    }
    fn mem_size(&self) -> usize {
        self.0
    }
}

/// A shared node of `len` bytes.
pub(super) fn node(len: usize) -> Arc<SizedNode> {
    Arc::new(SizedNode(len))
}
