//! The Larix node store: where the B-tree keeps its nodes.
//!
//! The B-tree asks the store for nodes by [`NodeId`], synchronously, and
//! never sees offsets, threads or filters. The store is generic over the node
//! type through the [`Codec`] trait, so it never imports the B-tree.
//!
//! Responsibilities:
//! - hand out node ids (logical, never reused);
//! - keep each live node and its reference count (the node table);
//! - keep the forest catalog as opaque bytes and switch it atomically on
//!   [`NodeStore::commit`].
//!
//! Invariants (numbered as in `docs/design.md`):
//! - S1: an id returned by [`NodeStore::allocate`] is never returned again.
//! - S2: [`NodeStore::get`] of a freed id fails with
//!   [`StoreError::NodeMissing`] at once.
//! - S3: a re-put of an id replaces the node; the older version is never
//!   read again.
#![forbid(unsafe_code)]

mod codec;
mod error;
mod id;
mod memory;
mod stats;

pub use codec::{Codec, CodecError};
pub use error::StoreError;
pub use id::NodeId;
pub use memory::NodeStore;
pub use stats::StoreStats;
