//! Copy-on-write B-trees in the larch tradition (Rodeh, "B-trees,
//! Shadowing, and Clones"), over the Larix node store.
//!
//! Trees live in a [`Forest`] and share nodes through reference counts; a
//! clone copies nothing but a root reference. Every change shadows the path
//! it touches: a node only this tree references is edited under its own id,
//! a shared one is copied first. Invariants (numbered in `docs/design.md`):
//!
//! - B1: keys in a node are strictly increasing; an index key is at most
//!   the smallest key of its subtree, and every key of child `i` is below
//!   index key `i + 1`.
//! - B2: all leaves are at level 0 and each child is one level below its
//!   parent, so all leaves are at the same depth.
//! - B3: every node encodes to at most the node size; every non-root node to
//!   at least a quarter of it, and a non-root index node has two children.
//! - B4: the refcount of a node equals its parent pointers plus the trees
//!   whose root it is; a node is stored if and only if that is non-zero.
//! - B4 counts a leaf's references to its out-of-line values and a value
//!   node's to its chunks as pointers too.
//! - B5: an operation that fails changes nothing.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod buffer;
mod build;
mod catalog;
mod check;
mod diff;
mod error;
mod forest;
mod journal;
mod limits;
mod mutate;
mod node;
mod publish;
mod range;
mod read;
mod snapshot;
mod txn;
mod value;

pub use catalog::{Catalog, MAX_CATALOG_LEN, MAX_NAME_LEN};
pub use check::{CheckReport, Problem};
pub use diff::{Change, Diff};
pub use error::{Error, Result};
pub use forest::{Forest, Tree};
pub use limits::{Limits, DEFAULT_NODE_SIZE, MAX_NODE_SIZE, MIN_NODE_SIZE};
pub use node::{Expect, Node, Stored, ValueRef, CHUNK_BYTES, MAX_VALUE_LEN, MAX_VALUE_NODE};
pub use range::Range;
pub use read::{Bounds, LevelShape, Shape};
pub use snapshot::{Snapshot, View};
pub use value::ValueReader;
