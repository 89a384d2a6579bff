//! [`LruMap`]: decoded nodes by id in least-recently-put order, knowing
//! the bytes they hold: the dirty queue. Reads peek without reordering, so
//! they can share its lock.
//!
//! Invariant: `bytes` is the sum of `Codec::mem_size` of the nodes held
//! (taken entries hold none).

use crate::{Codec, NodeId};
use lru::LruCache;
use rustc_hash::FxBuildHasher;
use std::sync::Arc;

/// An LRU map of decoded nodes that knows the bytes it holds. An entry may
/// be *taken* (its node lent to an in-place edit): it keeps its place and
/// its allocation, holds no node, and is filled again by the next insert,
/// so an edit of a queued node costs no map churn.
pub(super) struct LruMap<N> {
    map: LruCache<NodeId, Option<Arc<N>>, FxBuildHasher>,
    pub(super) bytes: usize,
}

impl<N: Codec> LruMap<N> {
    pub(super) fn new() -> Self {
        LruMap {
            map: LruCache::unbounded_with_hasher(FxBuildHasher),
            bytes: 0,
        }
    }

    /// The node of `id`, without making it the most recently used.
    pub(super) fn peek(&self, id: NodeId) -> Option<Arc<N>> {
        self.map.peek(&id).and_then(Clone::clone)
    }

    /// Whether `id` has an entry, holding its node or lent out for an edit
    /// ([`LruMap::take`]): either way a version newer than any on disk or
    /// in flight exists, so none of those may enter the clean cache (S4).
    pub(super) fn has_entry(&self, id: NodeId) -> bool {
        self.map.peek(&id).is_some()
    }

    /// Puts `node` under `id` as the most recent entry; returns whether
    /// `id` had an entry (see [`LruMap::has_entry`]).
    pub(super) fn insert(&mut self, id: NodeId, node: Arc<N>) -> bool {
        self.bytes += node.mem_size();
        let (had, old) = match self.map.get_mut(&id) {
            Some(slot) => (true, slot.replace(node)),
            None => (false, self.map.put(id, Some(node)).flatten()),
        };
        if let Some(old) = old {
            self.bytes -= old.mem_size();
        }
        had
    }

    pub(super) fn remove(&mut self, id: NodeId) -> Option<Arc<N>> {
        let node = self.map.pop(&id).flatten()?;
        self.bytes -= node.mem_size();
        Some(node)
    }

    /// Lends the node of `id` out, leaving its entry in place and empty.
    pub(super) fn take(&mut self, id: NodeId) -> Option<Arc<N>> {
        let node = self.map.peek_mut(&id)?.take()?;
        self.bytes -= node.mem_size();
        Some(node)
    }

    /// Removes the least recently used node while over `budget` (dropping
    /// taken entries on the way).
    pub(super) fn pop_over(&mut self, budget: usize) -> Option<(NodeId, Arc<N>)> {
        while self.bytes > budget {
            match self.map.pop_lru()? {
                (id, Some(node)) => {
                    self.bytes -= node.mem_size();
                    return Some((id, node));
                }
                (_, None) => continue,
            }
        }
        None
    }

    pub(super) fn drain(&mut self) -> Vec<(NodeId, Arc<N>)> {
        self.bytes = 0;
        let mut out = Vec::with_capacity(self.map.len());
        while let Some((id, node)) = self.map.pop_lru() {
            if let Some(node) = node {
                out.push((id, node));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_codec::node;

    #[test]
    fn bytes_follow_inserts_replacements_and_removals() {
        let mut m = LruMap::new();
        m.insert(NodeId(1), node(10));
        m.insert(NodeId(2), node(20));
        assert_eq!(m.bytes, 30);
        m.insert(NodeId(1), node(5));
        assert_eq!(m.bytes, 25);
        assert_eq!(m.remove(NodeId(2)).unwrap().0, 20);
        assert_eq!(m.bytes, 5);
        assert!(m.remove(NodeId(2)).is_none());
    }

    #[test]
    fn a_taken_entry_holds_nothing_until_refilled() {
        let mut m = LruMap::new();
        assert!(!m.insert(NodeId(1), node(10)), "a new entry");
        assert_eq!(m.take(NodeId(1)).unwrap().0, 10);
        assert_eq!(m.bytes, 0);
        // Lent out: no node to read, but an entry, so that no older
        // version of it enters the clean cache meanwhile (S4).
        assert!(m.peek(NodeId(1)).is_none());
        assert!(m.has_entry(NodeId(1)));
        assert!(!m.has_entry(NodeId(2)));
        assert!(m.take(NodeId(1)).is_none());
        assert!(m.insert(NodeId(1), node(7)), "the lent entry, refilled");
        assert_eq!(m.peek(NodeId(1)).unwrap().0, 7);
        assert_eq!(m.bytes, 7);
    }

    #[test]
    fn pop_over_evicts_least_recent_first_and_skips_taken_entries() {
        let mut m = LruMap::new();
        for i in 1..=4 {
            m.insert(NodeId(i), node(10));
        }
        // A re-put makes an entry the most recent; a peek does not.
        m.insert(NodeId(1), node(10));
        assert!(m.peek(NodeId(3)).is_some());
        m.take(NodeId(2));
        assert_eq!(m.pop_over(25).map(|(id, _)| id), Some(NodeId(3)));
        assert_eq!(m.pop_over(25), None);
        assert_eq!(m.bytes, 20);
        let drained: Vec<NodeId> = m.drain().into_iter().map(|(id, _)| id).collect();
        assert_eq!(drained, vec![NodeId(4), NodeId(1)]);
        assert_eq!(m.bytes, 0);
    }
}
