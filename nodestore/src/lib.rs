//! The Larix node store: where the B-tree keeps its nodes.
//!
//! The B-tree asks the store for nodes by [`NodeId`], synchronously, and
//! never sees offsets, threads or filters. The store is generic over the node
//! type through the [`Codec`] trait, so it never imports the B-tree.
//!
//! Responsibilities:
//! - hand out node ids (logical, never reused);
//! - keep each live node and its reference count: a cache of decoded
//!   nodes, a dirty queue of recent puts, an in-flight map of nodes on
//!   their way to disk through worker threads running the filter pipeline,
//!   and a node table of locations and refcounts ([`NodeStore`]);
//! - make commits durable in the commit log ([`NodeStore::log`],
//!   [`NodeStore::sync_log`]), and write the nodes, the node table and the
//!   forest catalog (kept as opaque bytes) to segments at checkpoints
//!   ([`NodeStore::checkpoint`]), each switched in atomically by the other
//!   superblock slot;
//! - recover on open: the newest checkpoint, then the committed log
//!   records after it for the caller to replay ([`NodeStore::replay`]);
//!   and compact sparse segments ([`NodeStore::compact`]).
//!
//! Invariants S1–S13 (the store) and L1–L5 (the commit log) are listed in
//! `docs/design.md` and cited where the code enforces them; the first
//! three:
//! - S1: an id returned by [`NodeStore::allocate`] is never returned again.
//! - S2: [`NodeStore::get`] of a freed id fails with
//!   [`StoreError::NodeMissing`] at once.
//! - S3: a re-put of an id replaces the node; the older version is never
//!   read again.
//!
//! All I/O goes through a [`Backend`] ([`FileBackend`], [`MemBackend`]).
//! The on-disk format (the private `format` module: blob records in
//! append-only segment files, the two-slot superblock, the chunked node
//! table and its directory, the commit log's records) is not part of the
//! API; its byte layouts are in `docs/design.md`. The `testing` feature
//! exports it, with the fault-injecting `FaultyBackend` of the crash tests,
//! as the `testing` module, for tests and fuzzers only.
#![forbid(unsafe_code)]

mod backend;
mod codec;
mod error;
#[cfg(any(test, feature = "testing"))]
mod faulty;
mod file_backend;
mod format;
mod id;
#[cfg(feature = "object-store")]
mod object_backend;
#[cfg(feature = "object-store")]
mod object_cache;
#[cfg(all(feature = "object-store", any(test, feature = "testing")))]
mod object_faulty;
mod stats;
mod store;

pub use backend::{Backend, FileId, LogId, MemBackend, SegmentId};
pub use codec::{Codec, CodecError};
pub use error::{Damage, StoreError};
pub use file_backend::FileBackend;
pub use format::blob::BlobKind;
pub use format::error::{BlobFault, FormatError, SlotFault};
pub use id::NodeId;
/// Filter errors, as the store reports them.
pub use larix_filters::FilterError;
#[cfg(feature = "object-store")]
pub use object_backend::{ObjectBackend, ObjectCounts, ObjectOptions};
pub use stats::Stats;
pub use store::{
    read_parameters, CheckpointPolicy, CompactionPolicy, Durability, NodeStore, Pin, Replay,
    ReplayGuard, SegmentStats, StoreConfig, MIN_COMPACTION_BYTES_PER_COMMIT,
};

// The on-disk format, for the store's own modules; outside it only through
// [`testing`].
#[cfg(test)]
pub(crate) use faulty::{CrashMode, FaultyBackend};
pub(crate) use format::blob::{BlobHeader, Location, HEADER_LEN, MAX_BLOB_LEN};
pub(crate) use format::digest::{node_digest, Digest, DIGEST_LEN};
pub(crate) use format::directory::Directory;
pub(crate) use format::log::{RecordHeader, LOG_HEADER_LEN, LOG_MAGIC, MAX_RECORD_LEN};
pub(crate) use format::segment::{
    read_blob, scan_segment, SegmentWriter, DEFAULT_MAX_SEGMENT_BYTES,
};
pub(crate) use format::superblock::{
    read_newest, read_newest_with_fault, write_slot, Parameters, Superblock, MAC_LEN, SLOT_LEN,
};
pub(crate) use format::table::{NodeTable, TableEntry};

/// What tests and fuzzers need and the product does not: the
/// fault-injecting backend and the on-disk format's building blocks, to
/// craft, damage and decode stores. Behind the `testing` feature.
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::backend::contract::{check_contract, check_random_access};
    pub use crate::faulty::{CrashMode, FaultyBackend};
    pub use crate::format::blob::{BlobHeader, Location, BLOB_MAGIC, HEADER_LEN, MAX_BLOB_LEN};
    pub use crate::format::digest::{node_digest, Digest, DIGEST_LEN};
    pub use crate::format::directory::Directory;
    pub use crate::format::segment::{
        read_blob, scan_segment, SegmentWriter, DEFAULT_MAX_SEGMENT_BYTES,
    };
    pub use crate::format::superblock::{
        no_seal, read_newest, read_newest_with_fault, read_slots, write_slot, Generation,
        Parameters, Seal, Superblock, FORMAT_VERSION, MAC_LEN, MAX_PARAMETERS_LEN, SLOT_LEN,
        SUPERBLOCK_MAGIC,
    };
    pub use crate::format::table::{NodeTable, TableEntry, CHUNK_BYTES, CHUNK_ENTRIES, MAX_CHUNK};
    #[cfg(feature = "object-store")]
    pub use crate::object_faulty::FaultyObjectStore;
}
