//! Newtypes for the identifiers that cross the store boundary.

use std::fmt;

/// The logical identity of a node. Ids are allocated by the store, start at
/// 1, and are never reused (invariant S1), so a stale id can never alias a
/// newer node.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node {}", self.0)
    }
}
