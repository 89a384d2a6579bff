//! Larix: an embedded key-value engine of copy-on-write B-trees.
//!
//! Trees live in a [`Forest`], share nodes through reference counts and
//! clone in O(1): a clone is a snapshot you can also write to. Keys and
//! values are byte strings; keys compare bytewise.
//!
//! ```
//! use larix::{Forest, Options};
//!
//! let forest = Forest::in_memory(Options::default())?;
//! let files = forest.create_tree("files")?;
//! files.insert(b"/etc/hosts", b"size=220")?;
//! let monday = forest.clone_tree("files", "files@monday")?;
//! files.remove(b"/etc/hosts")?;
//! assert_eq!(monday.get(b"/etc/hosts")?, Some(b"size=220".to_vec()));
//! assert!(forest.check()?.is_clean());
//! # Ok::<(), larix::Error>(())
//! ```
//!
//! The crates underneath, from the bottom: `larix-filters` (bytes → bytes),
//! `larix-nodestore` (nodes by id), `larix-btree` (the trees). This crate is
//! the public API over them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Where a forest keeps its files: the backends a forest can run on.
pub mod backend {
    pub use larix_nodestore::{Backend, FileBackend, FileId, MemBackend, SegmentId};
}
mod forest;
mod options;

pub use forest::{Forest, Stats};
pub use larix_btree::{Change, CheckReport, Diff, Problem};
pub use larix_btree::{Error, LevelShape, Range, Result, Shape, Snapshot, Tree, ValueReader, View};
pub use larix_filters::{FilterError, FilterSpec};
pub use larix_nodestore::SegmentStats;
pub use options::{Durability, Options, MIN_CHECKPOINT_LOG_BYTES};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
